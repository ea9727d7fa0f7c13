"""The whole InstructGPT recipe as one resumable job: ``chatrlhf pipeline``.

Consumes a ``PipelineConfig`` (a preset plus dotted overrides). Produces a run directory::

    runs/<id>/
      config.yaml        the resolved config
      data/              simulate: demos.jsonl, prompts.jsonl, rankings.jsonl (simulator candidates)
      distill/           1b   everyday-request demonstrations from the base model's best replies
      sft/               1-2  simulate, SFT
      compare/           3-4  K samples per prompt from the policy, ranked (rankings.jsonl)
      redteam/           4b   --adversarial: the policy attacked; attacks it did not refuse as rankings, PPO prompts, demos
      reward/            5    reward model (+ eval.json: held-out accuracy vs annotators and gold)
      ppo/               6    policy after PPO (metrics.jsonl per iteration)
      eval/              7    results.json, samples.jsonl
      compare-2/ reward-2/ ppo-2/ eval-2/ ...   later rounds (3-7 again from the current policy)
      redteam-fresh/     7b   --adversarial: ASR on fresh attacks (SFT, final policy) beside a helpfulness probe
      timings.json       wall seconds per stage
      report.md + *.png  8    the report

Every stage directory gets a ``DONE`` manifest as its last write; a stage that has one is skipped,
so a run killed at any moment (even ``kill -9``) resumes where it stopped. Stages hand off only
through these files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from chatrlhf.comparisons import SampleConfig
from chatrlhf.distill import DistillConfig
from chatrlhf.evaluate import EvalConfig
from chatrlhf.ppo import PPOConfig
from chatrlhf.reward import RewardConfig
from chatrlhf.safety.adversarial_round import AdversarialConfig
from chatrlhf.sft import SFTConfig
from chatrlhf.simulate.export import SimulateConfig


@dataclass
class PipelineConfig:
    run_dir: str = "runs/default"
    base_model: str = "smollm2"  # the pretrained (here: instruction-tuned) starting point
    rounds: int = 1  # repetitions of steps 3-7, each from the latest policy
    labels: str = "sim"  # "sim" | "db:URL" | a rankings JSONL file
    sim_rankings: bool = True  # also train the RM on the simulator's candidate rankings (data/)
    seed: int = 0
    threads: int = 0  # torch threads for every stage (0 = torch default)
    outside_data: str = ""  # public data written by people (like ../shared/data) for eval; "" = skip
    # A store URL or SQLite path: register every finished stage (base, sft, rm, each ppo round) as
    # a model version there at the end (deploy.runs.register_run); "" = do not register.
    register: str = ""
    # The adversarial round (safety/adversarial_round.py): each round red-teams its starting policy
    # and trains the RM and PPO on the successes; the end measures ASR on fresh attacks.
    adversarial: bool = False
    simulate: SimulateConfig = field(default_factory=SimulateConfig)
    distill: DistillConfig = field(default_factory=lambda: DistillConfig(n_prompts=0))
    sft: SFTConfig = field(default_factory=SFTConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    redteam: AdversarialConfig = field(default_factory=AdversarialConfig)  # used with adversarial=true


def load(preset: str | None = "cpu", overrides: list[str] | tuple[str, ...] = ()) -> PipelineConfig:
    from chatrlhf.config import load_config

    return load_config(PipelineConfig, preset, list(overrides))


def suffix(round_: int) -> str:
    return "" if round_ == 1 else f"-{round_}"


class Runner:
    """Runs stages in order, skipping completed ones and recording wall time per stage."""

    def __init__(self, run_dir: Path, log: Callable[[str], None] = print):
        self.run_dir, self.log = run_dir, log
        self.timings_path = run_dir / "timings.json"
        from chatrlhf.train_utils import read_json

        self.timings: dict[str, Any] = read_json(self.timings_path) if self.timings_path.exists() else {}

    def stage(self, name: str, fn: Callable[[], Any]) -> None:
        from chatrlhf.train_utils import is_done, write_json

        if is_done(self.run_dir / name):
            self.log(f"[{name}] complete, skipped")
            return
        self.log(f"[{name}] running")
        t0 = time.time()
        fn()
        self.timings[name] = round(time.time() - t0, 1)
        write_json(self.timings_path, self.timings)
        self.log(f"[{name}] done in {self.timings[name]:.0f}s")


def split_demos(demos_path: Path, data_dir: Path) -> tuple[Path, Path]:
    """Dialog demonstrations and single-turn instruction data, the two sources SFT mixes."""
    from chatrlhf.schema import Conversation, read_jsonl, write_jsonl

    demos = read_jsonl(demos_path, Conversation)
    single = [d for d in demos if sum(m["role"] == "user" for m in d.messages) == 1]
    dialogs = [d for d in demos if sum(m["role"] == "user" for m in d.messages) > 1]
    a, b = data_dir / "sft_dialogs.jsonl", data_dir / "sft_instructions.jsonl"
    write_jsonl(a, dialogs)
    write_jsonl(b, single)
    return a, b


def _stage_cfgs(cfg: PipelineConfig) -> None:
    """Propagate the run-wide seed, thread count and outside data into the stage configs."""
    for c in (cfg.distill, cfg.sft, cfg.reward, cfg.ppo, cfg.eval):
        c.seed = cfg.seed
        if cfg.threads:
            c.threads = cfg.threads
    if cfg.outside_data:
        cfg.eval.outside_data = cfg.outside_data


def run(cfg: PipelineConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Steps 1-8 (3-7 repeated ``rounds`` times); returns the last round's evaluation results."""
    from chatrlhf import comparisons, distill, evaluate, ppo, report, reward, sft
    from chatrlhf.config import to_yaml
    from chatrlhf.simulate import run as simulate_run
    from chatrlhf.safety import adversarial_round as adv
    from chatrlhf.train_utils import is_done, read_json, setup_torch, write_inputs

    if cfg.adversarial:
        adv.check(cfg.redteam, cfg.rounds)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(to_yaml(cfg))
    setup_torch(cfg.seed, cfg.threads)
    _stage_cfgs(cfg)
    runner = Runner(run_dir, log)
    data = run_dir / "data"
    sft_dir = run_dir / "sft"

    # 1. simulate data (the simulator skips itself when its manifest matches the config)
    t0 = time.time()
    cfg.simulate.seed = cfg.seed
    simulate_run(cfg.simulate, data)
    runner.timings.setdefault("simulate", round(time.time() - t0, 1))

    # 1b. everyday requests answered by the base model itself (its best replies by gold-free checks)
    distilled: list[str] = []
    if cfg.distill.n_prompts > 0:
        runner.stage("distill", lambda: distill.run(cfg.distill, cfg.base_model, run_dir / "distill"))
        distilled = [str(run_dir / "distill" / "general_demos.jsonl")]

    # 2. SFT on demonstrations, mixing dialogs with single-turn instructions (distilled ones too)
    def do_sft() -> None:
        dialogs, instructions = split_demos(data / "demos.jsonl", data)
        cfg.sft.model, cfg.sft.out_dir = cfg.base_model, str(sft_dir)
        cfg.sft.data, cfg.sft.instructions = [str(dialogs)], [str(instructions), *distilled]
        sft.run(cfg.sft)

    runner.stage("sft", do_sft)
    policy = sft_dir
    rankings: list[str] = [str(data / "rankings.jsonl")] if cfg.sim_rankings and (data / "rankings.jsonl").exists() else []
    results: dict[str, Any] = {}
    earlier: list[str] = []  # policies of rounds before the current one (compare's "previous" source)
    adv_prompts: list[str] = []  # successful attacks of every round so far (--adversarial)
    adv_demos: list[str] = []
    for r in range(1, cfg.rounds + 1):
        s = suffix(r)
        compare_dir, rm_dir, ppo_dir, eval_dir = (run_dir / f"{n}{s}" for n in ("compare", "reward", "ppo", "eval"))
        # 3-4. K samples per prompt from the current policy (and the other sources of sample.mix), ranked
        specs = {"sft": str(sft_dir), "base": cfg.base_model, "previous": list(earlier)}
        runner.stage(f"compare{s}", lambda: comparisons.run(str(policy), [str(data / "prompts.jsonl")], compare_dir,
                                                             cfg.labels, cfg.sample, cfg.seed, r, specs))
        if cfg.labels == "sim" or r == 1:  # an external file is the same every round: add it once
            rankings.append(str(compare_dir / "rankings.jsonl"))

        # 4b. red-team the current policy; the attacks it did not refuse (redteam.train_on) train this
        # round's RM and PPO (and later ones)
        if cfg.adversarial:
            rt_dir = run_dir / f"redteam{s}"
            if is_done(rm_dir) and not is_done(rt_dir):
                log(f"WARNING [redteam{s}] reward{s} finished before this red-team step: this round's RM and PPO "
                    "do not train on its attacks (start a new run_dir for a full adversarial round)")
            everyday = [*distilled, str(data / "demos.jsonl")]  # contrast answers (redteam.contrast_everyday)
            runner.stage(f"redteam{s}", lambda: adv.run_round(cfg.redteam, str(policy), rt_dir, r, log, everyday))
            rankings.append(str(rt_dir / "rankings.jsonl"))
            adv_prompts.append(str(rt_dir / "prompts.jsonl"))
            adv_demos.append(str(rt_dir / "demos.jsonl"))

        # 5. reward model on every ranking so far, started from SFT
        def do_reward() -> None:
            cfg.reward.model, cfg.reward.out_dir = str(sft_dir), str(rm_dir)
            cfg.reward.rankings, cfg.reward.demos = list(rankings), str(data / "demos.jsonl")
            write_inputs(rm_dir, rankings=cfg.reward.rankings, demos=[cfg.reward.demos])
            reward.run(cfg.reward)

        runner.stage(f"reward{s}", do_reward)

        # 6. PPO from the current policy, KL-anchored to SFT
        def do_ppo() -> None:
            cfg.ppo.policy, cfg.ppo.reference = str(policy), str(sft_dir)
            cfg.ppo.reward_model, cfg.ppo.out_dir = str(rm_dir), str(ppo_dir)
            cfg.ppo.prompts = [str(train_prompts(data)), *adv_prompts]
            cfg.ppo.ptx_data = [str(data / "demos.jsonl"), *distilled, *adv_demos]
            write_inputs(ppo_dir, prompts=cfg.ppo.prompts, ptx_data=cfg.ppo.ptx_data)
            ppo.run(cfg.ppo)

        runner.stage(f"ppo{s}", do_ppo)

        # 7. evaluate base, SFT and this round's policy on held-out prompts
        def do_eval() -> None:
            models = {"base": cfg.base_model, "sft": str(sft_dir)}
            if r > 1:  # the round's starting policy, named by its round ("ppo" is this round's)
                models[f"ppo-{r - 1}"] = str(policy)
            models["ppo"] = str(ppo_dir)
            cfg.eval.models, cfg.eval.prompts = models, [str(data / "prompts.jsonl")]
            cfg.eval.reward_model, cfg.eval.out_dir = str(rm_dir), str(eval_dir)
            start = next((m for m in models if m.startswith("ppo-")), "sft")  # this round's starting policy
            cfg.eval.gate = f"ppo:{start}"
            # this round against where it started comes first (win rates, outside fixes/breaks, samples)
            cfg.eval.comparisons = [f"ppo:{start}", *[c for c in cfg.eval.comparisons if c != f"ppo:{start}"]]
            evaluate.run(cfg.eval)

        runner.stage(f"eval{s}", do_eval)
        if policy != sft_dir:
            earlier.append(str(policy))
        policy = ppo_dir
        results = read_json(eval_dir / "results.json")
        warn_gate(results.get("gate"), f"eval{s}", log)

    # 7b. ASR on fresh attacks (new intents, a new seed, held-out families) where training started
    # and at its end, beside over-refusal and verifiable gold (the stage's own probe, generated with
    # the evaluation's settings; the last evaluation's figures with redteam.probe=false)
    if cfg.adversarial:
        fresh = run_dir / "redteam-fresh"
        runner.stage("redteam-fresh", lambda: adv.run_fresh(cfg.redteam, {"sft": str(sft_dir), "ppo": str(policy)},
                                                            results, fresh, log, cfg.eval))
        if (w := adv.tradeoff_warning(read_json(fresh / "summary.json").get("tradeoff"))):
            log(f"WARNING [redteam-fresh] {w}")

    # 8. the report (always rewritten: cheap, and it reflects everything on disk)
    t0 = time.time()
    report.write_report(run_dir, cfg.rounds)
    runner.timings["report"] = round(time.time() - t0, 1)
    from chatrlhf.train_utils import write_json

    write_json(run_dir / "timings.json", runner.timings)
    log(f"report: {run_dir / 'report.md'}")
    if cfg.register:
        register(run_dir, cfg.register, log)
    return results


def register(run_dir: Path, db: str, log: Callable[[str], None] = print) -> list[Any]:
    """The run's finished stages as model versions in the store at ``db`` (named after the run)."""
    from chatrlhf.deploy.runs import register_run
    from chatrlhf.store import Store

    store = Store(db)
    try:
        store.upgrade()
        versions = register_run(store, run_dir)
    finally:
        store.dispose()
    log("registered: " + ", ".join(f"{v.name} ({v.kind})" for v in versions)
        + " (chatrlhf models list / promote)")
    return versions


def warn_gate(g: dict[str, Any] | None, stage: str, log: Callable[[str], None]) -> None:
    """One clear line when this round's PPO is worse than the policy it started from."""
    if g and g.get("passed") is False:
        bad = "; ".join(f"{c['name']} {c['start']:.3f} -> {c['candidate']:.3f}" for c in g["checks"] if not c["passed"])
        log(f"WARNING [{stage}] gate failed: {g['candidate']} is worse than {g['start']} on {bad}")


def train_prompts(data: Path) -> Path:
    """The train-split prompts (PPO never sees a held-out prompt)."""
    from chatrlhf.schema import Conversation, read_jsonl, write_jsonl

    out = data / "ppo_prompts.jsonl"
    convs = [c for c in read_jsonl(data / "prompts.jsonl", Conversation) if c.meta.get("split", "train") == "train"]
    write_jsonl(out, convs)
    return out
