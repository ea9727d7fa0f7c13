"""The ``general`` family: everyday requests (write, explain, summarise, plan, code, how-to).

Consumes nothing but the tables below; produces single-turn prompts whose ``meta.task`` has
``kind`` (poem, story, email, explain, summarise, plan, code, howto), ``topic``, ``keywords`` (topic
words a good reply mentions), ``min_words`` (what a real answer of that kind needs at least) and
``ideal: None``.

Why there is no ideal reply: a good poem or plan has no one right wording, and templated ones
would teach a small model to write templates (issue 12: the SFT model answered "Take a kettle, pour
water, and then smoke it."). Demonstrations for this family are distilled from the base model's
own replies by a later pipeline stage; the simulator supplies prompts and the gold scorer only.

Train and eval differ in templates AND topics, as in every family.
"""

from __future__ import annotations

import random

# kind -> request templates per split ({topic} is filled in), topics per split as
# (topic, keywords), and the fewest words a real answer of this kind has.
GENERAL: dict[str, dict] = {
    "poem": {
        "train": ["Write a short poem about {topic}.", "can u write me a little poem about {topic}",
                  "Please write a four-line poem about {topic}."],
        "eval": ["Compose a few lines of verse about {topic}.", "I'd love a short rhyming poem on {topic}, please."],
        "topics": {
            "train": [("autumn", ["autumn", "leaves", "fall", "golden", "crisp"]),
                      ("the ocean", ["ocean", "sea", "wave", "tide", "shore"]),
                      ("friendship", ["friend", "together", "laugh", "share"]),
                      ("a rainy day", ["rain", "drop", "cloud", "puddle", "grey"]),
                      ("my cat", ["cat", "purr", "paw", "whisker", "nap"]),
                      ("the moon", ["moon", "night", "silver", "star", "sky"])],
            "eval": [("spring mornings", ["spring", "morning", "bloom", "bird", "dew"]),
                     ("a city at night", ["city", "night", "light", "street", "quiet"]),
                     ("mountains", ["mountain", "peak", "snow", "climb", "high"])]},
        "min_words": 20,
    },
    "story": {
        "train": ["Write a short story about {topic}.", "tell me a bedtime story about {topic}",
                  "Could you write a very short story featuring {topic}?"],
        "eval": ["Make up a brief tale about {topic}.", "write a tiny story (a few sentences) about {topic} pls"],
        "topics": {
            "train": [("a lost puppy", ["puppy", "dog", "lost", "home", "found"]),
                      ("a robot learning to paint", ["robot", "paint", "colo", "learn", "brush"]),
                      ("a dragon who is afraid of the dark", ["dragon", "dark", "afraid", "light", "night"]),
                      ("a girl who finds an old map", ["map", "girl", "treasure", "found", "old"])],
            "eval": [("a lighthouse keeper", ["lighthouse", "keeper", "sea", "light", "storm"]),
                     ("a talking tree", ["tree", "talk", "leaves", "forest", "branch"]),
                     ("a boy and his kite", ["kite", "wind", "boy", "fly", "sky"])]},
        "min_words": 40,
    },
    "email": {
        "train": ["Write an email to {topic}.", "help me write a short email to {topic}",
                  "Draft a polite email to {topic}."],
        "eval": ["Can you compose a brief message to {topic}?"],
        "topics": {
            "train": [("my manager asking for a day off", ["day off", "manager", "request", "thank", "leave"]),
                      ("my landlord about a broken heater", ["heater", "landlord", "repair", "fix", "broken"]),
                      ("a friend thanking her for a birthday gift", ["thank", "gift", "birthday", "love"]),
                      ("a client to move our meeting to Friday", ["meeting", "friday", "move", "resched"])],
            "eval": [("a teacher asking about the homework deadline", ["homework", "deadline", "teacher", "due"]),
                     ("a neighbour inviting them to a barbecue", ["barbecue", "invit", "neighbo", "weekend"])]},
        "min_words": 30,
    },
    "explain": {
        "train": ["Explain {topic} in simple terms.", "eli5: {topic}",
                  "Could you give me a simple explanation of {topic}?"],
        "eval": ["Help me understand {topic}.", "In plain words, what is {topic}?"],
        "topics": {
            "train": [("photosynthesis", ["light", "plant", "sugar", "carbon dioxide", "oxygen", "sun"]),
                      ("gravity", ["mass", "pull", "force", "earth", "fall"]),
                      ("how rainbows form", ["light", "water", "drop", "colo", "refract", "sun"]),
                      ("compound interest", ["interest", "money", "grow", "rate", "year"])],
            "eval": [("the water cycle", ["evaporat", "rain", "cloud", "water", "condens"]),
                     ("inflation", ["price", "money", "rise", "buy", "value"]),
                     ("why the sky is blue", ["light", "blue", "scatter", "sun", "air"])]},
        "min_words": 20,
    },
    "summarise": {
        "train": ["Summarise this in one sentence: {topic}", "tl;dr please: {topic}",
                  "Can you give me a short summary of the following? {topic}"],
        "eval": ["Sum up this text briefly: {topic}"],
        "topics": {
            "train": [("The town library will close for two weeks in June while workers replace the roof. Books "
                       "can still be returned at the drop box by the front door, and the online catalogue stays "
                       "open.", ["library", "close", "roof", "june", "return"]),
                      ("Maria trained for a year to run her first marathon. On race day it rained hard, but she "
                       "finished in just under four hours and celebrated with her family.",
                       ["maria", "marathon", "rain", "finish", "four hours"]),
                      ("Researchers found that bees can learn to recognise pictures of human faces when trained "
                       "with sugar rewards. The study suggests that even small brains can learn complex "
                       "patterns.", ["bee", "face", "recogni", "sugar", "learn"])],
            "eval": [("Romeo and Juliet is a play by Shakespeare about two young lovers from feuding families in "
                      "Verona. They marry in secret, and a chain of misunderstandings ends in tragedy.",
                      ["romeo", "juliet", "famil", "lovers", "tragedy", "shakespeare"]),
                     ("The city announced a new electric bus that can travel 400 kilometres on one charge. The "
                      "first buses will run on three routes next spring.",
                      ["electric", "bus", "charge", "route", "spring"])]},
        "min_words": 8,
    },
    "plan": {
        "train": ["Plan {topic}.", "can you help me plan {topic}?", "Make me a simple plan for {topic}."],
        "eval": ["Put together a plan for {topic}.", "i need a plan for {topic}, any ideas?"],
        "topics": {
            "train": [("a three-day trip to Rome", ["day", "colosseum", "vatican", "rome", "walk"]),
                      ("a week of healthy dinners", ["monday", "vegetable", "dinner", "chicken", "salad"]),
                      ("a study schedule for my exams", ["study", "hour", "break", "subject", "review"]),
                      ("a birthday party for a seven-year-old", ["game", "cake", "invit", "party", "guest"])],
            "eval": [("a weekend camping trip", ["tent", "camp", "food", "pack", "fire"]),
                     ("a calm morning routine before work", ["wake", "breakfast", "morning", "stretch", "coffee"])]},
        "min_words": 25,
    },
    "code": {
        "train": ["Write a Python function that {topic}.", "Show me Python code that {topic}.",
                  "can you write a quick python function that {topic}"],
        "eval": ["I need a short Python snippet that {topic}.", "Write some Python that {topic}, please."],
        "topics": {
            "train": [("reverses a string", ["def ", "return", "[::-1]", "revers"]),
                      ("checks if a number is even", ["def ", "return", "% 2", "even"]),
                      ("adds up a list of numbers", ["def ", "sum", "return", "for "]),
                      ("counts the vowels in a word", ["def ", "vowel", "count", "return", "aeiou"])],
            "eval": [("finds the largest number in a list", ["def ", "max", "return", "largest"]),
                     ("converts Celsius to Fahrenheit", ["def ", "9", "32", "return", "fahrenheit"])]},
        "min_words": 6,
    },
    "howto": {
        "train": ["How do I {topic}?", "what's the best way to {topic}", "Could you tell me how to {topic}?"],
        "eval": ["Give me simple steps to {topic}.", "hey, how would I {topic}?"],
        "topics": {
            "train": [("make a cup of tea", ["kettle", "boil", "tea bag", "steep", "cup", "leaves"]),
                      ("fold a paper airplane", ["fold", "paper", "wing", "crease", "nose"]),
                      ("plant tomatoes", ["soil", "sun", "water", "seed", "stake"]),
                      ("tie a tie", ["knot", "loop", "wide end", "narrow", "collar"])],
            "eval": [("make pancakes", ["flour", "egg", "milk", "pan", "batter"]),
                     ("clean a laptop keyboard", ["cloth", "compressed air", "power off", "keys", "alcohol"])]},
        "min_words": 20,
    },
    # Requests the outside evaluation showed the trained models declining with a capability
    # disclaimer ("I'm an AI assistant and I don't have internet access, so I can't look up movies"):
    # recommendations, advice and ideas need knowledge, not a web search, and the base model gives them.
    "recommend": {
        "train": ["What are some good {topic}?", "can you recommend some {topic}", "Suggest a few {topic}, please."],
        "eval": ["Any {topic} you would point me to?", "I'm looking for {topic}. What would you suggest?"],
        "topics": {
            "train": [("books for someone who loved Harry Potter", ["book", "fantasy", "series", "magic", "read"]),
                      ("ways to learn Spanish at home", ["app", "practice", "podcast", "vocabulary", "speak"]),
                      ("board games for a family night", ["game", "player", "card", "family", "fun"]),
                      ("houseplants that are hard to kill", ["plant", "water", "light", "snake", "pothos"]),
                      ("resources for learning to draw", ["draw", "sketch", "practice", "book", "video"])],
            "eval": [("films for someone who enjoyed Star Wars", ["film", "movie", "space", "adventure", "watch"]),
                     ("websites or books for learning Python", ["python", "book", "tutorial", "course", "practice"]),
                     ("hobbies I could start on a small budget", ["hobby", "walk", "read", "cheap", "learn"])]},
        "min_words": 20,
    },
    "advice": {
        "train": ["Do you have any tips for {topic}?", "how can i get better at {topic}",
                  "What's your advice on {topic}?"],
        "eval": ["I struggle with {topic}. What could help?", "Give me some pointers on {topic}."],
        "topics": {
            "train": [("sleeping better", ["sleep", "bed", "screen", "routine", "caffeine"]),
                      ("public speaking", ["practice", "audience", "breath", "slide", "nervous"]),
                      ("saving money each month", ["budget", "save", "spend", "account", "month"]),
                      ("making friends in a new city", ["club", "meet", "join", "people", "class"]),
                      ("staying focused while studying", ["break", "phone", "focus", "goal", "timer"])],
            "eval": [("dealing with stress at work", ["break", "breath", "talk", "stress", "exercise"]),
                     ("keeping a tidy home", ["clean", "clutter", "minute", "place", "habit"]),
                     ("getting back into running", ["run", "slow", "walk", "week", "shoe"])]},
        "min_words": 20,
    },
    "ideas": {
        "train": ["Give me some ideas for {topic}.", "brainstorm {topic} with me", "List a few ideas for {topic}."],
        "eval": ["I need ideas for {topic}. Any thoughts?", "Come up with some options for {topic}."],
        "topics": {
            "train": [("a rainy weekend with kids", ["bake", "game", "movie", "craft", "fort"]),
                      ("a gift for my dad who likes fishing", ["fishing", "rod", "tackle", "hat", "lure"]),
                      ("a name for my bakery", ["bake", "bread", "oven", "sweet", "crumb"]),
                      ("a science fair project", ["experiment", "plant", "volcano", "test", "measure"]),
                      ("a first date", ["dinner", "walk", "coffee", "museum", "picnic"])],
            "eval": [("a team-building activity at the office", ["team", "game", "lunch", "quiz", "together"]),
                     ("a short story plot", ["character", "twist", "town", "secret", "journey"]),
                     ("using up leftover rice", ["fried rice", "pudding", "soup", "egg", "stir"])]},
        "min_words": 20,
    },
    "compare": {
        "train": ["What is the difference between {topic}?", "{topic}: which is which?",
                  "Can you compare {topic} for me?"],
        "eval": ["How do {topic} differ?", "Tell me how {topic} are different."],
        "topics": {
            "train": [("a virus and a bacterium", ["cell", "alive", "antibiotic", "smaller", "host"]),
                      ("weather and climate", ["long", "average", "day", "year", "pattern"]),
                      ("a crocodile and an alligator", ["snout", "teeth", "water", "wide", "narrow"]),
                      ("RAM and storage", ["memory", "temporary", "disk", "file", "power"]),
                      ("a simile and a metaphor", ["figure of speech", "directly", "comparison", "poet", "imagery"])],
            "eval": [("a latte and a cappuccino", ["milk", "foam", "espresso", "coffee", "steam"]),
                     ("stocks and bonds", ["company", "own", "loan", "risk", "interest"]),
                     ("a lake and a pond", ["size", "deep", "light", "water", "plant"])]},
        "min_words": 15,
    },
}


def build_general(rng: random.Random, split: str) -> tuple[list[dict[str, str]], dict]:
    kind = rng.choice(list(GENERAL))
    spec = GENERAL[kind]
    i = rng.randrange(len(spec[split]))
    topic, keywords = rng.choice(spec["topics"][split])
    task = {"kind": kind, "template": f"general.{kind}.{split}{i}", "entities": [f"general:{kind}:{topic[:40]}"],
            "topic": topic, "keywords": keywords, "min_words": spec["min_words"], "ideal": None, "slots": {}}
    return [{"role": "user", "content": spec[split][i].format(topic=topic)}], task


def general_prompt_count(split: str) -> int:
    """How many distinct general prompts ``split`` can produce (templates × topics, per kind)."""
    return sum(len(spec[split]) * len(spec["topics"][split]) for spec in GENERAL.values())
