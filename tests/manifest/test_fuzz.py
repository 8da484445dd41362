"""Untrusted input never produces a traceback: only ManifestError (or a valid model) comes out."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enarx_pkg import manifest
from enarx_pkg.manifest import ManifestError

DATA = Path(__file__).parent / "data"
SEEDS = [p.read_text() for p in sorted(DATA.glob("*.toml"))]
FRAGMENTS = ['[[files]]\n', 'kind = "listen"\n', 'name = "a:b"\n', "port = 70000\n", '[stdin]\n', "[keep]\n",
             "memory_mb = -1\n", '[secrets]\nX = "v"\n', "[network.incoming.0]\n", '[build]\ncommand = "x"\n',
             'output = "../a"\n', "[package]\n", 'version = "1"\n', "x = [[[1]]]\n", "= \n", '"""\n', "\x00",
             "[attestation]\nd = 1979-05-27T07:32:00Z\n", "time_limit_s = nan\n"]
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _load(data: str | bytes) -> None:
    try:
        model = manifest.loads(data)
    except ManifestError as exc:
        assert exc.problems and exc.diagnostics()
        return
    manifest.to_dict(model)
    assert manifest.loads(manifest.to_toml(model)).files == model.files


@FAST
@given(st.binary(max_size=512))
def test_random_bytes(data: bytes) -> None:
    _load(data)


@FAST
@given(st.text(max_size=512))
def test_random_text(text: str) -> None:
    _load(text)


@FAST
@given(st.lists(st.sampled_from(FRAGMENTS + SEEDS), max_size=8), st.randoms(use_true_random=False))
def test_spliced_fragments_of_real_files(parts: list[str], rng: object) -> None:
    _load("".join(parts))


@FAST
@given(st.sampled_from(SEEDS), st.integers(min_value=0, max_value=4000), st.text(max_size=8))
def test_mutated_real_files(seed: str, at: int, insert: str) -> None:
    at = at % (len(seed) + 1)
    _load(seed[:at] + insert + seed[at + len(insert):])


@FAST
@given(st.dictionaries(st.text(min_size=1, max_size=12).filter(lambda k: "=" not in k and "\x00" not in k),
                       st.text(max_size=20), max_size=5),
       st.lists(st.text(max_size=20), max_size=5))
def test_any_env_and_args_round_trip_through_to_toml(env: dict[str, str], args: list[str]) -> None:
    model = manifest.EnarxToml(path=None, args=tuple(args), env=dict(sorted(env.items())))
    text = manifest.to_toml(model)
    again = manifest.loads(text) if text.strip() else model
    assert again.args == model.args and dict(again.env) == env
    assert manifest.to_toml(again) == text
