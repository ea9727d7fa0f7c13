"""A transparent moderation filter for chat inputs and outputs.

``moderate(text) -> ModerationResult(flagged, categories, scores)`` scores a text on nine categories
(``CATEGORIES``) with readable patterns, so a wrong block can be traced to the pattern that caused
it. It is a hook, not a model: with ``chatrlhf serve --moderation pattern`` the server calls it on
every user message and on the reply as it streams. The server's default is the trained classifier
(``safety.moderator``), which has the same signature; this filter stays as the fallback that needs
no model, names the pattern groups a blocked text matches in the server's log, and scores replies
for the red team's judge.

How a score is made, per category:
  1. benign idioms are blanked out first ("kill a Python process", "shoot a sunset photo",
     "life hack", "heart attack"), so harmless-but-scary phrases never reach the patterns;
  2. each matching signal contributes its weight; weights combine as a noisy-or
     (``1 - prod(1 - w)``), so several weak hints add up but never exceed 1;
  3. in a request (not a reply), asking for instructions ("how do I", "step by step", "write me")
     adds ``INTENT_WEIGHT`` to every category that already has a signal: "bomb" in a history
     question stays below the threshold, "how do I build a bomb" does not;
  4. in a reply (``role="assistant"``), sentences that refuse ("I can't help you make a bomb.")
     are dropped first: a refusal names the harm it declines;
  5. asking how to defend against or spot something ("how do I protect my site from SQL
     injection") multiplies the hacking and fraud scores by ``DEFENSIVE_FACTOR``.
A category is flagged when its score reaches ``THRESHOLD``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from chatrlhf.schema import HARM_CATEGORIES

CATEGORIES = HARM_CATEGORIES
THRESHOLD = 0.5
INTENT_WEIGHT = 0.3
DEFENSIVE_FACTOR = 0.5

STRONG, MEDIUM, WEAK = 0.85, 0.45, 0.2

# Harmless uses of scary words; blanked out before any category pattern runs.
# Every repetition is bounded ({0,6}, {0,3}, {0,40}) and no two alternatives inside one
# repetition can match the same text in many ways unboundedly: the ``re`` engine backtracks, and
# ``(?:(?:the|the\s+\w+)\s+)*`` took time exponential in the number of repeated "the"s.
# Bounded, the work per start position is a constant, so moderation is linear in the text
# (tests/server/test_moderation_speed.py measures it).
_BENIGN = [
    r"\bkill(?:ing|ed|s)?\s+(?:(?:a|the|this|that|all|my|every|each|any|zombie|child|parent|stuck|"
    r"hung|frozen|running|background|old|orphan(?:ed)?|python|java|node|chrome|docker|linux|unix|"
    r"the\s+\w+)\s+){0,6}(?:process(?:es)?|pid|thread|task|job|program|app|application|server|"
    r"session|container|pod|tab|switch|command|signal|query|connection|daemon|service)s?\b",
    r"\bkill\s+-\d+\b",
    r"\b(?:kill|pkill|killall)\s+(?:-\w+\s+)?(?:%\d+|\$\(|\d+\b|<pid>|pid\b|\$pid\b)",
    r"\bkill(?:ing|ed)?\s+(?:the\s+)?(?:weeds?|bacteria|germs|mold|lice|pests?|aphids|time|"
    r"the\s+mood|the\s+lights?|the\s+engine)\b",
    r"\b(?:killed|killing|kill)\s+it\b",
    r"\bkill(?:er)?\s+(?:feature|app|deal)\b",
    r"\bkill(?:ing|ed|s)?\s+(?:the\s+|a\s+|that\s+|this\s+)?(?:\w+\s+)?(?:smell|odou?r|taste|flavou?r|buzz)s?\b",
    r"\bmurder(?:ed|ing|s)?\s+(?:this|that|the|a|my)\s+(?:\w+\s+)?(?:song|track|set|solo|performance|cover)\b",
    r"\bshoot(?:ing|s)?\s+(?:(?:a|the|some|my|this|portrait|product|wedding|sunset|landscape|"
    r"night|street|family|group)\s+){0,6}(?:photos?|pictures?|pics?|videos?|films?|movies?|scenes?|"
    r"portraits?|sunsets?|footage|landscapes?|weddings?|hoops|the\s+breeze|an?\s+email|a\s+message)\b",
    r"\bshoot\s+(?:me\s+)?(?:an?\s+)?(?:email|message|text|line)\b",
    r"\bphoto\s*shoot\b",
    r"\blife\s*hacks?\b",
    r"\bhackathons?\b",
    r"\bgrowth\s+hack(?:ing|s)?\b",
    r"\bheart\s+attacks?\b",
    r"\bpanic\s+attacks?\b",
    r"\bexecut(?:e|ing|ion)\s+(?:(?:a|the|this|my|shell|sql|python)\s+){0,6}(?:commands?|scripts?|"
    r"quer(?:y|ies)|code|programs?|plans?|tasks?|orders?|statements?|functions?)\b",
    r"\b(?:bath|seed|cherry|photo)\s+bombs?\b",
    r"\bbomb(?:ed)?\s+(?:the|my|an?)\s+(?:exam|test|interview|audition)\b",
    r"\b(?:dead|deadly)\s*lines?\b",
    r"\bdrug\s+(?:interactions?|tests?|store|trials?)\b",
    r"\bprescri(?:be|ption)\b",
    r"\b(?:penetration|pen)\s+test(?:ing|s)?\b",
    r"\b(?:ethical|white[- ]hat)\s+hack(?:ing|er|ers)?\b",
    r"\bcapture\s+the\s+flag\b",
    r"\bnuke\s+(?:the\s+)?(?:node_modules|cache|database|db|branch|repo|directory|folder)\b",
    r"\bpoison(?:ed|ing)?\s+(?:pill|the\s+well)\b",
    r"\bterminate\s+(?:the\s+)?(?:process|instance|contract|loop)\b",
    r"\bchoke\s*points?\b",
    r"\bmurder\s+myster(?:y|ies)\b",
    r"\bsex(?:ual)?\s+(?:education|ed|health)\b",
    r"\btalk\s+to\s+(?:my|our)\s+\w+\s+about\s+sex\b",
    r"\bsmash(?:ed|ing)?\s+(?:it|the\s+(?:like|subscribe)|bros)\b",
]

# Phrases that ask for actionable instructions.
_INTENT = re.compile(
    r"\b(?:how\s+(?:do|can|could|would|should)\s+(?:i|we|you|one|someone)|how\s+to|"
    r"step[- ]by[- ]step|instructions?\s+(?:for|to|on)|teach\s+me|show\s+me\s+how|help\s+me|"
    r"write\s+(?:me\s+)?(?:a|an|some)|give\s+me|best\s+way\s+to|easiest\s+way\s+to|"
    r"tell\s+me\s+how|explain\s+how\s+to|recipe\s+for|i\s+want\s+to|i(?:'m|\s+am)\s+going\s+to|"
    r"without\s+(?:getting\s+caught|being\s+detected|anyone\s+know(?:ing)?)|"
    r"(?:where|which|what)\b[^.?!]{0,40}\bcan\s+i|"
    r"^\s*(?:please\s+)?(?:write|give|tell|explain|create|generate|draft|compose|list|make))\b",
    re.I | re.M,
)

# In a reply, a sentence that refuses ("I can't help you make a bomb.") names the harm it refuses;
# such sentences are blanked before scoring a reply (never a user's text: "I can't stop thinking
# about killing myself" must count). The phrase is found first and then widened to its sentence
# (``_refusals_removed``): one regex ``[^.!?]*PHRASE[^.!?]*`` would retry the sentence from every
# start position, quadratic in a long reply without punctuation.
_REFUSAL_PHRASE = re.compile(
    r"\b(?:i\s+(?:can(?:no|')?t|cannot|won'?t|will\s+not|must\s+decline|refuse)|"
    r"i(?:'m|\s+am)\s+(?:not\s+able|unable|sorry))\b",
    re.I,
)
_SENTENCE_END = re.compile(r"[.!?\n]")


def _refusals_removed(text: str) -> str:
    """``text`` with every sentence that holds a refusal phrase replaced by one space (a sentence
    ends at ``.!?`` or a newline; its closing ``.!?`` goes with it; a phrase broken over a line
    joins its two lines). Linear: the text between phrases is scanned once."""
    spans: list[list[int]] = []
    end = 0
    for m in _REFUSAL_PHRASE.finditer(text):
        if m.end() <= end:
            continue  # inside the sentence already blanked
        stop = _SENTENCE_END.search(text, m.end())
        end = len(text) if stop is None else stop.start() if stop.group() == "\n" else stop.end()
        if spans and m.start() < spans[-1][1]:
            spans[-1][1] = end  # the phrase runs past that sentence's end: widen it
            continue
        prev = spans[-1][1] if spans else 0
        start = max(prev, max(text.rfind(c, prev, m.start()) for c in ".!?\n") + 1)
        spans.append([start, end])
    out, kept = [], 0
    for start, stop_at in spans:
        out += [text[kept:start], " "]
        kept = stop_at
    out.append(text[kept:])
    return "".join(out)


# Asking how to defend against an attack is security work, not an attack.
_DEFENSIVE = re.compile(
    r"\b(?:defend|protect|prevent|mitigate|guard|recogni[sz]e|spot)\w*\b",
    re.I,
)
_DEFENSIVE_CATEGORIES = ("malware_hacking", "fraud")

_PEOPLE = (
    r"(?:him|her|them|someone|somebody|people|a\s+person|my\s+\w+|the\s+\w+|your\s+\w+|"
    r"his\s+\w+|a\s+(?:man|woman|kid|child|cop|teacher|neighbou?r|coworker|boss))"
)
# Narrower, for verbs with harmless objects too ("attack the king", "beat my friend at tennis").
_PERSON = (
    r"(?:him|her|them|someone|somebody|people|a\s+person|(?:my|a|his|her|their|the)\s+(?:ex|"
    r"wife|husband|partner|girlfriend|boyfriend|neighbou?r|coworker|co-worker|colleague|boss|"
    r"teacher|classmate|roommate|brother|sister|friend|father|mother|dad|mom|son|daughter|kid|"
    r"child|man|woman|guy|girl|boy|cop|stranger))"
)
_MINOR = r"(?:child|kid|minor|underage|preteen|teen(?:ager|age)?|under\s+(?:18|eighteen)|\d{1,2}[- ]year[- ]old)s?"
_SEXUAL = (
    r"(?:sexual(?:ly)?\s+(?:explicit|content|story|stories|images?|photos?|pictures?|roleplay|"
    r"fantas\w+|way|manner|situations?|scenes?|acts?|poses?)|sexy|nudes?|naked|porn\w*|explicit|"
    r"erotic\w*|lewd)"
)
_GROUPS = (
    r"(?:jews?|muslims?|christians?|blacks?|whites?|asians?|mexicans?|immigrants?|gays?|lesbians?|"
    r"trans(?:gender)?\s+people|women|arabs?|hindus?|gypsies|roma|africans?|latinos?|refugees)"
)

_SIGNALS: dict[str, list[tuple[str, float]]] = {
    "violence": [
        (rf"\b(?:kill|murder|stab|strangle|behead|torture|assassinate|maim)\s+{_PEOPLE}", STRONG),
        (r"\b(?:murder|kidnap|assassinat\w*|mass\s+shooting|massacre|torture)\b", MEDIUM),
        (r"\b(?:kill|hurt|beat\s+up|attack|shoot|stab|poison)\b", WEAK),
        (r"\bget\s+away\s+with\s+(?:murder|killing)\b", STRONG),
        (r"\b(?:dispose\s+of|hide)\s+(?:a|the)\s+(?:dead\s+)?body\b", STRONG),
        (r"\bterror(?:ist)?\s+attack\b", MEDIUM),
        (rf"\b(?:hurt|injure|harm|beat\s+up|assault|maim)\s+(?:\w+\s+)?{_PERSON}", MEDIUM),
        (r"\b(?:seriously|badly|physically)\s+(?:hurt|injure|harm|attack|assault|beat)", STRONG),
        (r"\b(?:look\s+like\s+an\s+accident|without\s+leaving\s+(?:any\s+)?(?:evidence|marks|"
         r"a\s+trace)|so\s+(?:he|she|they)\s+learns?\s+(?:a|their|his|her)\s+lesson)\b", MEDIUM),
        (r"\bstart\s+a\s+fight\b", MEDIUM),
    ],
    "weapons": [
        (r"\b(?:make|build|assemble|construct|create|manufacture)\s+(?:a|an|my\s+own|some)?\s*"
         r"(?:(?:pipe|nail|car|fertili[sz]er|dirty|homemade)\s+)?(?:bombs?|explosives?|ieds?|"
         r"grenades?|napalm|molotov(?:\s+cocktail)?s?|silencers?|suppressors?|ghost\s+guns?|"
         r"nerve\s+agents?|sarin|ricin|bioweapons?|chemical\s+weapons?)\b", STRONG),
        (r"\b(?:pipe\s+bomb|ied|napalm|thermite|tatp|sarin|ricin|nerve\s+agent|bioweapon|"
         r"chemical\s+weapon|ghost\s+gun|untraceable\s+gun)s?\b", MEDIUM),
        (r"\b(?:convert|modify)(?:ing)?\s+(?:a\s+|an\s+|my\s+|the\s+)?(?:[\w-]+\s+)?(?:rifle|gun|pistol|"
         r"firearm|weapon|ar-?15)s?\s+(?:to|into)\s+(?:fully?[- ]auto(?:matic)?|automatic)", STRONG),
        (r"\b(?:illegal|unregistered|untraceable|stolen)\s+(?:guns?|firearms?|weapons?|rifles?|"
         r"pistols?)\b|\bno\s+background\s+checks?\b", MEDIUM),
        (r"\b(?:bombs?|explosives?|detonators?|firearms?|guns?|rifles?|ammunition)\b", WEAK),
    ],
    "illicit_drugs": [
        (r"\b(?:make|cook|synthesi[sz]e|produce|manufacture|extract|grow)\s+(?:some\s+)?"
         r"(?:meth(?:amphetamine)?|crack|cocaine|heroin|fentanyl|lsd|mdma|ecstasy|dmt|ghb)\b",
         STRONG),
        (r"\b(?:buy|sell|smuggle|deal|score)\s+(?:some\s+)?(?:meth|crack|cocaine|coke|heroin|"
         r"fentanyl|lsd|mdma|molly|ecstasy)\b", STRONG),
        (r"\b(?:meth(?:amphetamine)?|crack\s+cocaine|cocaine|heroin|fentanyl|mdma)\b", WEAK),
        (r"\b(?:drug\s+(?:dealer|dealing|lab)|dark\s*web\s+(?:market|vendor))\b", MEDIUM),
        (r"\b(?:illegal|illicit|street|hard)\s+drugs?\b", MEDIUM),
        (r"\b(?:make|cook|mix|produce|synthesi[sz]e|grow|sell|buy|smuggle|deal)\b[^.?!]{0,40}"
         r"\b(?:illegal|illicit|street)\s+drugs?\b|\bsmuggl\w*\s+(?:\w+\s+)?drugs\b", STRONG),
    ],
    "malware_hacking": [
        (r"\b(?:write|create|build|code|make|develop)\s+(?:a|an|some|me\s+a)?\s*(?:working\s+)?"
         r"(?:ransomware|keylogger|virus|worm|trojan|rootkit|botnet|malware|spyware|"
         r"credential\s+stealer|info\s*stealer)\b", STRONG),
        (r"\b(?:hack|break)\s+into\s+(?:[\w']+\s+){0,3}(?:account|email|phone|computer|network|"
         r"server|wifi|system|database|instagram|facebook|gmail)s?\b", STRONG),
        (r"\b(?:ransomware|keylogger|rootkit|botnet|spyware|zero[- ]day\s+exploit)\b", MEDIUM),
        (r"\btake\s+down\s+(?:a|an|the|their|someone'?s|[\w']+)\s+(?:\w+\s+)?(?:website|site|"
         r"server|network|service)s?\b", MEDIUM),
        (r"\bflood\s+of\s+(?:traffic|requests|packets)\b", MEDIUM),
        (r"\b(?:ddos|sql\s+injection|bypass\s+(?:the\s+)?(?:login|authentication|2fa)|"
         r"crack\s+(?:the\s+|a\s+|someone'?s\s+)?password)\b", MEDIUM),
        (r"\b(?:hack|hacking|exploit|malware|virus)\b", WEAK),
    ],
    "fraud": [
        (r"\b(?:phishing|scam)\s+(?:email|text|message|site|page|call)s?\b", MEDIUM),
        (r"\b(?:steal|clone|skim)\s+(?:[\w']+\s+){0,2}(?:credit\s+cards?|identit(?:y|ies)|"
         r"passwords?|credentials|bank\s+details|social\s+security)\b", STRONG),
        (r"\b(?:counterfeit|forge|fake)\s+(?:an?\s+|some\s+)?(?:money|bills|currency|passports?|ids?|documents?|"
         r"checks?|cheques?|signatures?|invoices?|receipts?)\b", STRONG),
        (r"\b(?:launder(?:ing)?\s+money|money\s+laundering|tax\s+evasion|ponzi|insurance\s+fraud|"
         r"identity\s+theft|pretending\s+to\s+be\s+(?:a|the|their|my)\s+bank)\b", MEDIUM),
        (r"\b(?:scam|fraud|phishing|con\s+(?:an?\s+)?(?:old|elderly))\b", WEAK),
        (r"\buse\s+(?:someone|somebody|other\s+people)(?:\s+else)?'?s?\s+(?:credit\s+card|identity|"
         r"bank\s+account|card|social\s+security)", STRONG),
        (r"\b(?:trick|scam|con|fool|manipulate|deceive)\s+(?:[\w']+\s+){0,3}into\s+(?:sending|"
         r"giving|paying|transferring|wiring)\b", STRONG),
        (r"\bfake\s+(?:charity|fundraiser|gofundme|donation|lottery|prize|invoice|reviews?)\b", MEDIUM),
    ],
    "self_harm": [
        (r"\b(?:kill|hurt|cut|harm)\s+myself\b", STRONG),
        (r"\b(?:end|take)\s+my\s+(?:own\s+)?life\b", STRONG),
        (r"\b(?:commit|committing)\s+suicide\b", STRONG),
        (r"\b(?:painless|easiest|quickest)\s+way\s+to\s+die\b", STRONG),
        (r"\b(?:want|wanna)\s+to\s+die\b", STRONG),
        (r"\b(?:suicid\w*|self[- ]harm|overdose)\b", MEDIUM),
        (r"\b(?:stop\s+existing|not\s+(?:be\s+)?alive\s+anymore|never\s+wake\s+up\s+again)\b", STRONG),
    ],
    "hate": [
        (rf"\b{_GROUPS}\s+(?:are|is)\s+(?:all\s+)?(?:subhuman|vermin|animals|parasites|"
         r"inferior|a\s+disease|cockroaches|filth|evil|the\s+problem)\b", STRONG),
        (rf"\b(?:exterminate|eradicate|deport\s+all|get\s+rid\s+of\s+(?:all\s+)?(?:the\s+)?)\s*"
         rf"{_GROUPS}\b", STRONG),
        (r"\b(?:subhuman|untermensch|master\s+race|racial\s+purity|ethnic\s+cleansing)\b", MEDIUM),
        (r"\b(?:(?:people\s+of\s+)?(?:a\s+certain|one|that|some)\s+(?:race|religion|ethnicity|"
         r"ethnic\s+group|nationality))\b[^.?!]{0,40}\b(?:inferior|superior|better\s+than|worse\s+than|"
         r"subhuman)", STRONG),
        (rf"\b(?:hatred|hate)\s+(?:against|toward|towards|of)\s+(?:a\s+|the\s+)?(?:minorit(?:y|ies)|"
         rf"[\w-]+\s+group|{_GROUPS})", STRONG),
        (r"\b(?:mock|insult|ridicule|demean)\w*\s+(?:[\w']+\s+){0,3}(?:for|because\s+of)\s+(?:their\s+)?"
         r"(?:ethnicity|race|religion|skin\s+colou?r|nationality|sexuality|disability)", STRONG),
        (r"\b(?:racist|ethnic)\s+(?:jokes|slurs)\b", MEDIUM),
    ],
    "harassment": [
        (r"\b(?:you(?:'re|\s+are)\s+(?:a\s+|an\s+|such\s+a\s+)?(?:worthless|pathetic|stupid|"
         r"disgusting|ugly)\s+(?:idiot|loser|piece\s+of\s+\w+|moron|bitch|waste))\b", STRONG),
        (r"\b(?:go\s+(?:kill\s+yourself|die)|kys)\b", STRONG),
        (r"\b(?:dox|doxx)(?:ing)?\b|\bfind\s+(?:out\s+)?where\s+(?:\w+\s+){1,2}lives\b", MEDIUM),
        (r"\bso\s+i\s+can\s+(?:follow|watch|track|spy\s+on)\s+(?:her|him|them)\b", MEDIUM),
        (r"\b(?:contact|message|reach|text|call)\w*\s+(?:[\w']+\s+){0,3}(?:who\s+(?:has\s+)?blocked\s+"
         r"me|after\s+(?:being|getting)\s+blocked)", STRONG),
        (r"\b(?:threatening|intimidating)\s+(?:messages?|letters?|notes?|texts?|emails?)\b", MEDIUM),
        (r"\bscare\s+(?:my\s+\w+|him|her|them)\s+into\b", MEDIUM),
        (rf"\b(?:humiliate|embarrass|shame|bully)\s+{_PERSON}", MEDIUM),
        (r"\b(?:stalk|harass|bully|threaten|intimidate)\s+(?:my\s+)?\w+", MEDIUM),
        (r"\b(?:idiot|moron|loser|worthless|pathetic)\b", WEAK),
    ],
    "sexual_minors": [
        (rf"\b{_MINOR}\b[^.]{{0,40}}\b{_SEXUAL}", STRONG),
        (rf"\b{_SEXUAL}\b[^.]{{0,40}}\b{_MINOR}\b", STRONG),
        (r"\b(?:cp|csam|loli|lolicon|pedo\w*)\b", STRONG),
    ],
}


@dataclass
class ModerationResult:
    flagged: bool
    categories: dict[str, bool] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def flagged_categories(self) -> list[str]:
        return [c for c in CATEGORIES if self.categories.get(c)]


@dataclass
class _Compiled:
    benign: list[re.Pattern]
    signals: dict[str, list[tuple[re.Pattern, float]]]


def _compile() -> _Compiled:
    return _Compiled(
        benign=[re.compile(p, re.I) for p in _BENIGN],
        signals={c: [(re.compile(p, re.I), w) for p, w in sigs] for c, sigs in _SIGNALS.items()},
    )


class Moderator:
    """The compiled filter; ``Moderator()(text)`` is ``moderate(text)``."""

    def __init__(self, threshold: float = THRESHOLD) -> None:
        self.threshold = threshold
        self._c = _compile()

    def __call__(self, text: str, role: str = "user") -> ModerationResult:
        """Score ``text``; ``role="assistant"`` first drops the sentences that refuse."""
        clean = _refusals_removed(text) if role == "assistant" else text
        for pat in self._c.benign:
            clean = pat.sub(" ", clean)
        # Replies are instructions by nature; only a request's phrasing says what is wanted.
        intent = role != "assistant" and bool(_INTENT.search(clean))
        defensive = bool(_DEFENSIVE.search(clean))
        scores: dict[str, float] = {}
        for cat in CATEGORIES:
            keep = 1.0
            hit = False
            for pat, w in self._c.signals[cat]:
                n = len(pat.findall(clean))
                if n:
                    hit = True
                    keep *= (1.0 - w) ** min(n, 3)
            if hit and intent:
                keep *= 1.0 - INTENT_WEIGHT
            score = 1.0 - keep
            if defensive and cat in _DEFENSIVE_CATEGORIES:
                score *= DEFENSIVE_FACTOR
            scores[cat] = round(score, 4)
        cats = {c: scores[c] >= self.threshold for c in CATEGORIES}
        return ModerationResult(flagged=any(cats.values()), categories=cats, scores=scores)


def moderate(text: str, role: str = "user") -> ModerationResult:
    """Score ``text`` (a user message, or with ``role="assistant"`` a reply) on ``CATEGORIES``;
    see the module docstring for how."""
    return default_moderator()(text, role)


@functools.lru_cache(maxsize=1)
def default_moderator() -> Moderator:
    """The shared filter, compiled on first use (not at import time)."""
    return Moderator()
