"""cksd's settings as an operator writes them by hand: a number outside what
its setting takes, an empty bind, ports given twice, each refused or read in
one clear line that names what the operator wrote (README, Configuration)."""

import pytest

from cks.cli.cksd import server_limits
from cks.config import load_settings
from support.procs import tool
from support.server import READY, Cksd, start_failure


@pytest.mark.parametrize("text, said", [
    ("[server]\nworkers = 0\n", "[server] workers must be 1 or more"),
    ("[server]\nmax_connections = 0\n", "[server] max_connections must be 1 or more"),
    ("[server]\nmax_connections = -5\n", "[server] max_connections must be 1 or more"),
    ("[server]\nmax_connections_per_address = 0\n",
     "[server] max_connections_per_address must be 1 or more"),
    # (one upload of [limits] max_upload_bytes at least: with less, it would
    # get 503 whatever else arrives)
    ("[server]\nupload_buffer_mb = 1\n", "[server] upload_buffer_mb must be 5.0 or more"),
    ("[server]\nupload_buffer_mb = 0.1\n[limits]\nmax_upload_bytes = 1048576\n",
     "[server] upload_buffer_mb must be 1.0 or more"),
    ("[server]\nidle_timeout = 0\n", "[server] idle_timeout must be more than 0"),
    ("[server]\nidle_timeout = nan\n", "[server] idle_timeout must be a finite number"),
    ("[server]\nhead_timeout = inf\n", "[server] head_timeout must be a finite number"),
    ("[server]\nrequest_timeout = -3\n", "[server] request_timeout must be more than 0"),
    ("[server]\nmin_write_rate_kb = 0\n", "[server] min_write_rate_kb must be more than 0"),
    ("[server]\nprocesses = 0\n", "[server] processes must be 1 or more"),
    ("[server]\nanswer_cache_mb = -1\n", "[server] answer_cache_mb must be 0 or more"),
    ("[database]\npool_size = 0\n", "[database] pool_size must be 1 or more"),
    ("[ratelimit]\nlookups_per_second = -1\n",
     "[ratelimit] lookups_per_second must be 0 or more"),
    ("[ratelimit]\nlookup_burst = 0.5\n", "[ratelimit] lookup_burst must be 1 or more"),
    ("[ratelimit]\npeer_refresh = 0\n", "[ratelimit] peer_refresh must be more than 0"),
    ("[limits]\nmax_upload_bytes = 0\n", "[limits] max_upload_bytes must be 1 or more"),
    ("[limits]\nmax_upload_bytes = -1\n", "[limits] max_upload_bytes must be 1 or more"),
    ("[limits]\nmax_results = 0\n", "[limits] max_results must be 1 or more"),
    ("[policy]\nmax_certifications = -1\n", "[policy] max_certifications must be 0 or more"),
    ("[sync]\npush_interval = 1\nkeys_per_request = 0\n",
     "[sync] keys_per_request must be 1 or more"),
    ("[recon]\nport = 0\ninterval = 0\n", "[recon] interval must be more than 0"),
    # (pushes to mail peers read [mail]: until 2026-12-06 cksd started, and
    # each push logged the bad value, for ever)
    ("[sync]\npush_interval = 1\n[mail]\nsmtp_port = 0\n",
     "[mail] smtp_port must be between 1 and 65535"),
    # (until 2026-12-06 such a value killed the thread that waited on it)
    ("[ratelimit]\npeer_refresh = 1e300\n", "[ratelimit] peer_refresh must be 1000000000 or less"),
    ("[sync]\npush_interval = 1e10\n", "[sync] push_interval must be 1000000000 or less"),
])
def test_a_number_out_of_its_range_is_one_line_naming_the_setting(tmp_path, text, said):
    code, err = start_failure(tmp_path, text)
    assert code == 1 and "refused.conf: " + said in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("text, args, said", [
    ("[server]\nport = 99999\n", [], "[server] port must be between 0 and 65535"),
    ("[recon]\nport = 70000\n", [], "[recon] port must be between -1 and 65535"),
    ("[server]\ntls_port = -2\n", [], "[server] tls_port must be between -1 and 65535"),
    ("", ["--port", "99999"], "--port must be between 0 and 65535"),
    ("", ["--recon-port", "70000"], "--recon-port must be between -1 and 65535"),
    ("[server]\nport = 24010\n[recon]\nport = 24010\n", [],
     "[server] port and [recon] port are both 24010: each needs a port of its own"),
    ("[server]\nport = 24011\n", ["--recon-port", "24011"],
     "[server] port and --recon-port are both 24011"),
])
def test_a_bad_port_is_named_as_the_operator_gave_it(tmp_path, text, args, said):
    (tmp_path / "cks.conf").write_text(text)
    run = tool("cksd.py", ["--db", "sqlite:///k.db", "--config", "cks.conf"] + args,
               cwd=str(tmp_path), timeout=30)
    err = run.stderr.decode()
    assert run.returncode != 0 and said in err and err.count("\n") == 1, err


def test_a_tls_port_equal_to_the_port_is_refused(tmp_path):
    """Not "cannot listen ... for hkps: Address already in use"."""
    run = tool("cksd.py", ["--db", "sqlite:///k.db", "--config", "/dev/null", "--port",
                           "24012", "--tls-port", "24012"], cwd=str(tmp_path), timeout=30)
    err = run.stderr.decode()
    assert run.returncode == 2 and err.count("\n") == 1, err
    assert "--port and --tls-port are both 24012: each needs a port of its own" in err


def test_an_empty_bind_is_the_default_address(tmp_path):
    """Not every address (until 2026-12-05 `bind =` listened on 0.0.0.0)."""
    config = tmp_path / "cks.conf"
    config.write_text("[server]\nbind =\n")
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=str(config), bind="") as server:
        assert READY.search(server.output()).group(1) == "127.0.0.1", server.output()


@pytest.mark.parametrize("text, buffer_mb", [
    ("", 64.0),
    ("[limits]\nmax_upload_bytes = 104857600\n", 100.0),
    ("[limits]\nmax_upload_bytes = 104857600\n[server]\nupload_buffer_mb = 300\n", 300.0)])
def test_the_upload_buffer_holds_one_largest_upload_by_default(tmp_path, text, buffer_mb):
    """Until it followed max_upload_bytes (2026-12-06, found by a review), a
    configuration with uploads over 64 MiB and no upload_buffer_mb, which
    ran before, made cksd refuse to start."""
    config = tmp_path / "cks.conf"
    config.write_text(text)
    assert server_limits(load_settings(str(config))).upload_buffer_mb == buffer_mb
