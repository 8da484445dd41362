"""deploy refuses a version its registry marks yanked (before any host), unless --allow-yanked.

Our registry says so in its JSON API; CNCF distribution has no such API, and deploy goes on.
"""

from __future__ import annotations

import pytest

from enarx_pkg import deploy as d
from enarx_pkg import verify, yanked
from enarx_pkg._cli.main import main
from enarx_pkg.errors import ExitCode
from enarx_pkg.oci.reference import parse
from tests.deploy.conftest import MARKER, SECRET, Published
from tests.deploy.proxy import Proxy, running


@pytest.fixture(scope="module")
def yanked_ref(published: Published, registry_server, tmp_path_factory) -> str:  # type: ignore[no-untyped-def]
    """The probe published to our registry as yank/probe:0.1.0 (with its signature), then yanked."""
    from enarx_pkg.oci.auth import Credential, static
    from enarx_pkg.oci.reference import parse_registry
    from enarx_pkg.publish import Target, publish
    from enarx_pkg.pull import pull

    pulled = pull(published.plain, tmp_path_factory.mktemp("yank") / "layout")
    creds = static(registry_server.host, Credential("admin", registry_server.admin_token))
    publish(pulled.layout, Target(parse_registry(registry_server.host), "yank/probe", "0.1.0"), credentials=creds)
    assert main(["registry", "yank", "yank/probe:0.1.0", "--data", str(registry_server.data_dir)]) == 0
    return f"{registry_server.host}/yank/probe:0.1.0"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, registry_server) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    monkeypatch.setenv("ENARX_PKG_REGISTRY_HOST", registry_server.host)  # no anonymous pull: the API needs it too
    monkeypatch.setenv("ENARX_PKG_REGISTRY_USERNAME", "admin")
    monkeypatch.setenv("ENARX_PKG_REGISTRY_PASSWORD", registry_server.admin_token)


def settings(pub: Published, host, url: str, policy, ref: str, **kw: object) -> d.DeploySettings:  # type: ignore[no-untyped-def]
    return d.DeploySettings(ref=ref, hosts=(url,), policy_path=policy, host_token=host.token, insecure_sim=True,
                            signer=verify.KeyPolicy(pub.signer_pub.read_bytes()), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_yanked_version_is_refused_before_any_host(published, sim_host, policy_for, yanked_ref, by) -> None:
    ref = yanked_ref if by == "tag" else yanked_ref.replace(":0.1.0", "@" + published.plain_digest)
    proxy = Proxy(sim_host.url)
    with running(proxy), pytest.raises(yanked.YankedError) as caught:
        d.deploy(settings(published, sim_host, proxy.url, policy_for(sim_host), ref))
    assert proxy.log == []  # no host was contacted
    err = caught.value
    assert err.exit_code == ExitCode.VERIFICATION_REFUSED
    assert ref in err.message and "yanked" in err.message and "--allow-yanked" in (err.hint or "")


def test_allow_yanked_deploys_it_by_the_digest_the_registry_named(published, sim_host, policy_for,
                                                                  yanked_ref) -> None:
    events: list[str] = []
    [r] = d.deploy(settings(published, sim_host, sim_host.url, policy_for(sim_host), yanked_ref, allow_yanked=True),
                   event=lambda h, s: events.append(s))
    assert r.error is None, r.error and r.error.message
    assert MARKER in r.stdout and r.status == 1
    assert any("yanked" in e and "--allow-yanked" in e for e in events)


def test_cli_refuses_yanked_with_exit_77(published, sim_host, policy_for, yanked_ref, capfd) -> None:
    code = main(["deploy", yanked_ref, "--host", sim_host.url, "--host-token-file", str(sim_host.token_file),
                 "--policy", str(policy_for(sim_host)), "--key", str(published.signer_pub), "--insecure-sim"])
    _, err = capfd.readouterr()
    assert code == 77
    assert f"{yanked_ref} (sha256:" in err and "is yanked" in err and "--allow-yanked" in err


def test_unyanked_version_deploys(published, sim_host, policy_for, yanked_ref, registry_server) -> None:
    assert main(["registry", "yank", "yank/probe:0.1.0", "--undo", "--data", str(registry_server.data_dir)]) == 0
    try:
        status = yanked.lookup(parse(yanked_ref), None)
        assert status is None  # anonymous: no pull right, so the API does not tell (404)
        [r] = d.deploy(settings(published, sim_host, sim_host.url, policy_for(sim_host), yanked_ref))
        assert r.error is None and r.status == 1, r.error and r.error.message
    finally:
        assert main(["registry", "yank", "yank/probe:0.1.0", "--data", str(registry_server.data_dir)]) == 0


def test_registry_without_the_api_proceeds(published, sim_host, policy_for) -> None:
    """CNCF distribution answers the API path with 404: deploy does not know, and goes on."""
    assert yanked.lookup(parse(published.plain), None) is None
    [r] = d.deploy(settings(published, sim_host, sim_host.url, policy_for(sim_host), published.plain))
    assert r.error is None and MARKER in r.stdout, r.error and r.error.message


@pytest.mark.parametrize("status, body, expected", [
    (200, b'{"digest": "sha256:' + b"a" * 64 + b'", "yanked": true}', yanked.VersionStatus("sha256:" + "a" * 64, True)),
    (200, b'{"yanked": false}', yanked.VersionStatus(None, False)),
    (404, b'{"errors": []}', None),
    (200, b"<html>not an API</html>", None),
    (200, b'{"yanked": "yes"}', None),
    (200, b'["yanked"]', None),
])
def test_answers_from_registries(status: int, body: bytes, expected: object) -> None:
    assert yanked.parse_answer(status, body) == expected
