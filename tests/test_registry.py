"""The method registry: dvc.yaml agrees with it, every spec is consistent, and a sixth method is one
registration away from `mriqa score`, the report and the benchmark (a toy method registered here)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import BaseModel

from mriqa_lib.claims import _OPS, Claim
from mriqa_lib.io import save_nifti
from mriqa_lib.methods import registry
from mriqa_lib.methods.registry import Flag, MethodSpec

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------- dvc.yaml
@pytest.fixture(scope="module")
def dvc() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())


def test_dvc_method_list_is_the_registry(dvc):
    names = list(registry.names())
    methods_var = next(v["methods"] for v in dvc["vars"] if isinstance(v, dict) and "methods" in v)
    assert methods_var == names, "dvc.yaml vars.methods differs from the registry (order: paper order)"
    for stage in ("benchmark", "calibrate", "generalisation"):  # each loads every method's model
        deps = {d.split("/", 1)[1] for d in dvc["stages"][stage]["deps"] if d.startswith("models/")}
        assert deps == set(names), f"dvc.yaml {stage} stage: one models/<method> dep per registered method"
    figures = dvc["stages"]["figures"]["foreach"]
    method_keys = [k for k in figures if k in names]
    assert method_keys == names, "dvc.yaml figures: one entry per registered method"
    for name, spec in registry.methods().items():
        assert figures[name]["nb"] == spec.notebook
        assert figures[name]["code"] == f"mriqa_lib/methods/{name}"
    # the other figures are the shared notebooks (00_*), not a method's
    assert all(figures[k]["nb"].startswith("00_") for k in figures if k not in names)


def test_dvc_runs_every_step_of_every_method(dvc):
    for spec in registry.methods().values():
        for step in spec.stages:
            stage = dvc["stages"].get(step)
            assert stage is not None and stage.get("foreach") == "${methods}", step
            assert stage["do"]["cmd"] == f"mriqa stage ${{item}} {step}"


# ------------------------------------------------------------------------ each registered spec
def _stage_functions(module_name: str) -> set[str]:
    """Top-level function names of a module, read from its source (no import: stages pull in torch)."""
    found = importlib.util.find_spec(module_name)
    assert found is not None and found.origin, f"stage module {module_name} not found"
    tree = ast.parse(Path(found.origin).read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


@pytest.mark.parametrize("name", registry.names())
def test_spec_is_consistent(name):
    spec = registry.get(name)
    assert spec.paper.startswith("P") and spec.title and issubclass(spec.params, BaseModel)
    spec.params()  # every setting has a default
    prefix = f"{name}_"
    for col in (spec.badness, spec.flag.score, spec.map_column, spec.motion_rms):
        assert not col or col.startswith(prefix), col
    if isinstance(spec.flag.threshold, str):
        assert spec.flag.threshold.startswith(prefix)
    assert spec.badness_sign in (1.0, -1.0)
    assert spec.flag.flagged({}) is None  # an unscored row has no verdict
    assert bool(spec.map_column) == bool(spec.map_label)
    assert (ROOT / "notebooks" / f"{spec.notebook}.ipynb").exists()
    assert set(spec.stages) <= _stage_functions(spec.stage_module)
    assert spec.claims, "every paper is held to at least one claim"
    for claim in spec.claims:
        assert (claim.method, claim.paper) == (name, spec.paper) and claim.op in _OPS
        assert isinstance(claim.target, bool) == (claim.op == "==")


@pytest.mark.parametrize("name", registry.names())
def test_claim_metrics_are_what_the_pipeline_writes(name):
    metrics = ROOT / "metrics" / f"{name}.json"
    if not metrics.exists():
        pytest.skip(f"{metrics} not produced here (dvc repro writes it)")
    import json

    written = json.loads(metrics.read_text())
    for claim in registry.get(name).claims:
        assert claim.value(written) is not None, f"{name}.json lacks the metric of claim '{claim.what}'"


@pytest.mark.parametrize("name", registry.names())
def test_scorer_classes_implement_the_protocol(name):
    """Each method's score module: every class with a ``score`` method takes (volume, reference, maps_dir)."""
    package = registry.get(name).load_scorer.__module__
    module = importlib.import_module(f"{package}.score")
    classes = [
        c
        for _, c in inspect.getmembers(module, inspect.isclass)
        if c.__module__ == module.__name__ and callable(getattr(c, "score", None))
    ]
    assert classes
    for cls in classes:
        assert issubclass(cls, registry.Scorer)
        params = list(inspect.signature(cls.score).parameters.values())[1:4]
        assert [p.name for p in params] == ["volume", "reference", "maps_dir"]
        assert params[1].default is None and params[2].default is None


def test_claims_table_is_the_registry_in_paper_order():
    from mriqa_lib import claims

    expected = [c for spec in registry.methods().values() for c in spec.claims]
    assert list(claims.CLAIMS) == expected
    papers = [c.paper for c in claims.CLAIMS]
    assert papers == sorted(papers)
    first = expected[0]
    assert claims.target(first.method, first.metric) == first.target
    with pytest.raises(KeyError, match="its claims"):
        claims.target(first.method, "no_such_metric")


def test_register_refuses_inconsistent_specs():
    good = {
        "name": "toy_bad",
        "paper": "P9",
        "title": "t",
        "params": BaseModel,
        "load_scorer": lambda d, s: None,
        "badness": "toy_bad_x",
    }
    with pytest.raises(ValueError, match="identifier"):
        registry.register(MethodSpec(**{**good, "name": "toy-bad"}))
    with pytest.raises(ValueError, match="another method"):
        registry.register(MethodSpec(**good, claims=(Claim("ecker", "P1", "w", "m", ">=", 1.0),)))
    with pytest.raises(ValueError, match="badness_sign"):
        registry.register(MethodSpec(**{**good, "badness_sign": 2.0}))
    assert "toy_bad" not in registry.names()
    with pytest.raises(KeyError, match="known: "):
        registry.get("toy_bad")


# ------------------------------------------------------------------------------- a toy method
class ToyParams(BaseModel):
    offset: float = 0.0


class MeanScorer(registry.Scorer):
    """Transparent scorer: the volume's mean (badness: larger = worse); its map: the volume minus its mean."""

    def score(self, volume, reference=None, maps_dir=None):
        out = {"toy_mean": float(np.mean(volume.data))}
        if maps_dir is not None:
            path = save_nifti(
                Path(maps_dir) / f"{Path(volume.path).name.split('.')[0]}_toy.nii.gz",
                volume.data - np.mean(volume.data),
                volume.affine,
            )
            out["toy_map"] = str(path)
        return out


class DifferenceScorer(registry.Scorer):
    """Transparent full-reference scorer: mean of the volume minus mean of the reference."""

    def score(self, volume, reference=None, maps_dir=None):
        assert maps_dir is None, "a method without map_column is not asked for maps"
        if reference is None:
            return {}
        return {"toyref_diff": float(np.mean(volume.data) - np.mean(reference.data))}


STAGE_CALLS: list = []


def synthesize(settings):
    """The toy's only stage step (its spec's stage_module is this test module)."""
    STAGE_CALLS.append(settings)


def _flag_above_12(row):
    value = registry.cell(row, "toy_mean")
    return None if value is None else float(value) > 12.0


@pytest.fixture()
def toy():
    """Register a toy method (P9) and a full-reference toy (P9), remove them afterwards."""
    spec = registry.register(
        MethodSpec(
            name="toy",
            paper="P9",
            title="mean intensity (test)",
            params=ToyParams,
            load_scorer=lambda model_dir, settings: MeanScorer(),
            badness="toy_mean",
            badness_sign=1.0,
            flag=Flag("toy_mean", 12.0, "mean above 12", _flag_above_12),
            map_column="toy_map",
            map_label="mean map",
            stage_module=__name__,
            stages=("synthesize",),
            claims=(Claim("toy", "P9", "mean", "toy_metric", ">=", 1.0),),
        )
    )
    ref = registry.register(
        MethodSpec(
            name="toyref",
            paper="P9",
            title="mean difference to a reference (test)",
            params=ToyParams,
            load_scorer=lambda model_dir, settings: DifferenceScorer(),
            badness="toyref_diff",
            full_reference=True,
        )
    )
    yield spec, ref
    registry.unregister("toy")
    registry.unregister("toyref")
    assert "toy" not in registry.names()


def _ball(level: float, seed: int, n: int = 20) -> np.ndarray:
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n)] * 3, indexing="ij")
    ball = (x**2 + y**2 + z**2 < 0.5).astype(np.float32) * level
    return ball + np.random.default_rng(seed).normal(0, 1.0, ball.shape).astype(np.float32)


def test_toy_method_is_in_the_registry_everywhere(toy):
    from mriqa_lib.claims import claims
    from mriqa_lib.cli import build_parser
    from mriqa_lib.config import settings_model
    from mriqa_lib.scoring import badness, flags

    assert registry.names()[-2:] == ("toy", "toyref")  # P9 after P1..P5
    assert badness()["toy"] == ("toy_mean", 1.0) and flags()["toy"].threshold == 12.0
    assert claims()[-1].method == "toy"
    assert registry.get("toyref").flag.score == "toyref_diff"  # default flag: the badness, no verdict
    assert settings_model().model_fields["toy"].annotation is ToyParams
    help_text = build_parser()._subparsers._group_actions[0].choices["score"].format_help()
    assert "toy,toyref" in help_text.replace("\n", "").replace(" ", "")


def test_toy_method_in_mriqa_score_and_report(toy, tmp_path, capsys):
    from mriqa_lib.cli import main

    inputs = tmp_path / "in"
    for i, level in enumerate((50.0, 100.0)):
        save_nifti(inputs / f"scan{i}.nii.gz", _ball(level, i), np.eye(4))
    for name in ("toy", "toyref"):
        (tmp_path / "models" / name).mkdir(parents=True)
    out = tmp_path / "out"
    args = [
        "score",
        str(inputs),
        "--out",
        str(out),
        "--checkpoints",
        str(tmp_path / "models"),
        "--params",
        str(ROOT / "params.yaml"),
        "--no-prepare",
        "--quiet",
    ]
    # every registered method by default: the five papers have no model here, so only the toys score
    assert main(args) == 0
    said = capsys.readouterr().out
    assert "P9 (toyref) needs --reference; skipped" in said
    frame = pd.read_csv(out / "scores.tsv", sep="\t")
    truth = [float(np.mean(nib.load(str(inputs / f"scan{i}.nii.gz")).get_fdata(dtype=np.float32))) for i in (0, 1)]
    assert list(frame.toy_mean) == pytest.approx(truth, rel=1e-5)  # the TSV keeps 6 digits
    assert "toyref_diff" not in frame and "toy_seconds" in frame
    for path in frame.toy_map:  # maps_dir given to the method with a map_column
        assert Path(path).parent == out / "maps"
        assert nib.load(path).get_fdata().mean() == pytest.approx(0.0, abs=1e-4)
    page = (out / "report.html").read_text()
    assert 'data-method="toy"' in page and "P9 toy" in page
    assert page.count("flagged: mean above 12") == sum(t > 12 for t in truth) == 1
    # with a reference, the full-reference toy scores too: mean difference to the reference
    assert main(args + ["--methods", "toyref", "--reference", str(inputs / "scan0.nii.gz"), "--force"]) == 0
    frame = pd.read_csv(out / "scores.tsv", sep="\t")
    assert list(frame.toyref_diff) == pytest.approx([0.0, truth[1] - truth[0]], abs=1e-4)


def _embedded(folder: Path, subjects: dict[str, str]) -> None:
    rows = ["participant_id\tsite\tsplit"]
    for i, (sid, split) in enumerate(subjects.items()):
        rows.append(f"{sid}\tsiteA\t{split}")
        save_nifti(
            folder / sid / "anat" / f"{sid}_T1w.nii.gz",
            np.clip(_ball(100.0, i, 24), 0, None),
            np.diag([2.0, 2.0, 2.0, 1.0]),
        )
    (folder / "participants.tsv").write_text("\n".join(rows) + "\n")


def test_toy_method_in_the_benchmark_stage(toy, tmp_path, monkeypatch):
    """`mriqa stage benchmark` on a tiny held-out set with only the toys trained: the toy's scores are
    its volumes' means and its AUROC is scikit-learn's on them; the full-reference toy is marked."""
    from sklearn.metrics import roc_auc_score

    from mriqa_lib.artifacts import REGISTRY, apply_artifact
    from mriqa_lib.benchmark import SEED_STRIDE, benchmark_max_severity
    from mriqa_lib.config import load_settings
    from mriqa_lib.io import load_nifti, read_json
    from mriqa_lib.stages import benchmark as stage

    monkeypatch.chdir(tmp_path)
    _embedded(tmp_path / "data" / "embedded", {"sub-01": "test", "sub-02": "train", "sub-03": "test"})
    for name in ("toy", "toyref"):
        (tmp_path / "models" / name).mkdir(parents=True)
    settings = load_settings(ROOT / "params.yaml")
    settings.benchmark = settings.benchmark.model_copy(
        update={"n_subjects": 2, "artifacts": ["rician_noise", "bias_field"], "levels": [0.5, 1.0], "design": "full"}
    )
    settings.trainer.threads = 1
    stage.run(settings)

    scores = pd.read_csv("results/benchmark/scores.tsv", sep="\t")
    assert sorted(set(scores.subject)) == ["sub-01", "sub-03"]  # held-out subjects only
    seed = settings.benchmark.seed
    for i, rec in enumerate(scores.itertuples()):  # the stage's order: clean first, then corrupted
        clean = load_nifti(Path("data/embedded") / rec.subject / "anat" / f"{rec.subject}_T1w.nii.gz")
        data = clean.data
        if rec.artifact != "clean":
            level = settings.benchmark.levels[rec.severity_level - 1]
            data, _ = apply_artifact(
                rec.artifact,
                clean.data,
                severity=level * benchmark_max_severity(REGISTRY[rec.artifact]),
                seed=seed * SEED_STRIDE + i,
                spacing=tuple(clean.spacing),
            )
        assert rec.toy_mean == pytest.approx(float(np.mean(data)), rel=1e-5)  # the TSV keeps 6 digits
        assert rec.toyref_diff == pytest.approx(float(np.mean(data) - np.mean(clean.data)), abs=1e-4)

    summary = pd.read_csv("results/benchmark/summary.tsv", sep="\t").set_index(["method", "artifact"])
    clean = scores[scores.artifact == "clean"]
    for art in ("rician_noise", "bias_field"):
        both = pd.concat([clean, scores[scores.artifact == art]])
        expected = roc_auc_score(both.artifact != "clean", both.toy_mean)
        assert summary.loc[("toy", art), "auroc"] == pytest.approx(expected)
        assert not summary.loc[("toy", art), "full_reference"] and summary.loc[("toyref", art), "full_reference"]
    section = Path("results/benchmark/readme_section.md").read_text()
    assert "| toy | toyref (full-ref.) |" in section
    metrics = read_json("metrics/benchmark.json")
    assert metrics["methods"] == ["toy", "toyref"]
    assert set(metrics["unavailable"]) == set(registry.names()) - {"toy", "toyref"}


def test_mriqa_stage_runs_the_toy_step_from_its_stage_module(toy, capsys):
    from mriqa_lib.cli import main

    STAGE_CALLS.clear()
    assert main(["stage", "toy", "synthesize", "--params", str(ROOT / "params.yaml")]) == 0
    assert len(STAGE_CALLS) == 1 and isinstance(STAGE_CALLS[0].toy, ToyParams)
    assert main(["stage", "toy", "train", "--params", str(ROOT / "params.yaml")]) == 2  # not one of its steps
    assert "unknown stage 'toy train'" in capsys.readouterr().err and len(STAGE_CALLS) == 1


def test_claims_table_values_keep_their_sign_and_size_below_three_decimals():
    from mriqa_lib.claims import _fmt

    assert [_fmt(v) for v in (0.7861, -0.328, 0.0, 0.00049, -3.7e-7)] == [
        "0.786",
        "-0.328",
        "0.000",
        "0.00049",
        "-3.7e-07",
    ]
    assert float(_fmt(-3.7e-7)) < 0 and float(_fmt(2e-9)) > 0
    assert [_fmt(v) for v in (True, False, None)] == ["yes", "no", "not measured"]
