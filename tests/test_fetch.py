"""The fetcher against real HTTP on 127.0.0.1, and the SSRF guard."""

import pytest

from core.library.fetch import AddressPolicy, FetchError, FetchLimits, fetch, is_public_address


def test_article_is_fetched(web_server, home):
    result = fetch(f"{web_server}/article")
    assert result.status == 200 and result.is_html
    assert "riverside park" in result.text


def test_redirect_chain_is_followed_and_recorded(web_server, home):
    result = fetch(f"{web_server}/redirect1")
    assert result.final_url == f"{web_server}/article"
    assert result.redirects == [f"{web_server}/redirect2", f"{web_server}/article"]


@pytest.mark.parametrize(("path", "kind", "words"), [
    ("/loop-a", "redirect_loop", "loop"),
    ("/chain0", "too_many_redirects", "5 redirects"),
    ("/missing", "http_error", "404"),
    ("/server-error", "http_error", "500"),
    ("/doc.pdf", "unsupported_type", "PDF"),
])
def test_failures_have_one_clear_sentence(web_server, home, path, kind, words):
    with pytest.raises(FetchError) as error:
        fetch(f"{web_server}{path}")
    assert error.value.kind == kind
    assert words in str(error.value)
    assert str(error.value).endswith(".") and "\n" not in str(error.value)


def test_byte_cap_is_enforced_while_streaming(web_server, home):
    with pytest.raises(FetchError) as error:
        fetch(f"{web_server}/big", FetchLimits(max_bytes=100_000))
    assert error.value.kind == "too_large"


def test_slow_page_times_out(web_server, home):
    with pytest.raises(FetchError) as error:
        fetch(f"{web_server}/slow", FetchLimits(connect_timeout=1, total_timeout=1.5))
    assert error.value.kind == "timeout"


def test_legacy_charset_from_meta_tag(web_server, home):
    result = fetch(f"{web_server}/legacy")
    assert result.charset in ("windows-1252", "cp1252")
    assert "Café crème" in result.text and "“flat white”" in result.text


def test_plain_text_is_accepted(web_server, home):
    assert fetch(f"{web_server}/plain").content_type == "text/plain"


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "not a url"])
def test_only_http_and_https(url, home):
    with pytest.raises(FetchError) as error:
        fetch(url)
    assert error.value.kind == "bad_url"


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "::1", "fc00::1", "fe80::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:7f00:0001::1", "224.0.0.1",
])
def test_internal_addresses_are_not_public(address):
    import ipaddress

    assert not is_public_address(ipaddress.ip_address(address))


def test_public_address_is_public():
    import ipaddress

    assert is_public_address(ipaddress.ip_address("93.184.216.34"))
    assert is_public_address(ipaddress.ip_address("2606:4700::1111"))


def test_internal_host_refused_without_allow_list(web_server, monkeypatch, home):
    monkeypatch.setenv("RASHOMON_ALLOWED_INTERNAL_HOSTS", "")
    with pytest.raises(FetchError) as error:
        fetch(f"{web_server}/article")
    assert error.value.kind == "refused_address"
    assert "127.0.0.1" in str(error.value)


def test_allow_list_accepts_cidr_and_host_names(web_server):
    port = web_server.rsplit(":", 1)[1]
    assert fetch(f"{web_server}/article", policy=AddressPolicy(("127.0.0.0/8",))).status == 200
    assert fetch(f"http://localhost:{port}/article", policy=AddressPolicy(("localhost",)),
                 resolver=lambda host, p: ["127.0.0.1"]).status == 200


def test_host_name_resolving_to_metadata_address_is_refused():
    with pytest.raises(FetchError) as error:
        fetch("http://metadata.example/", resolver=lambda host, port: ["169.254.169.254"], policy=AddressPolicy(()))
    assert error.value.kind == "refused_address"


def test_any_internal_address_among_several_is_refused():
    # Offline, a connection to the public address would fail too: only the refusal's kind proves the guard.
    with pytest.raises(FetchError) as error:
        fetch("http://mixed.example/", resolver=lambda h, p: ["93.184.216.34", "10.0.0.5"], policy=AddressPolicy(()))
    assert error.value.kind == "refused_address" and "10.0.0.5" in str(error.value)


def test_redirect_to_internal_address_is_checked_again(web_server):
    # The first hop (allow-listed 127.0.0.1) redirects to the cloud metadata address: refused.
    with pytest.raises(FetchError) as error:
        fetch(f"{web_server}/to-metadata", policy=AddressPolicy(("127.0.0.1",)))
    assert error.value.kind == "refused_address" and "169.254.169.254" in str(error.value)


def test_dns_rebinding_cannot_switch_the_address(web_server):
    """The host resolves once per hop; the connection goes to the address that was checked.

    A rebinding resolver answers the allowed address first and an internal one afterwards: the
    fetch succeeds against the checked address and the resolver is asked exactly once.
    """
    port = int(web_server.rsplit(":", 1)[1])
    answers = iter([["127.0.0.1"], ["10.0.0.1"], ["10.0.0.1"]])
    calls = []

    def rebinding_resolver(host, p):
        calls.append(host)
        return next(answers)

    result = fetch(f"http://rebind.test:{port}/article", resolver=rebinding_resolver,
                   policy=AddressPolicy(("127.0.0.1",)))
    assert result.status == 200 and calls == ["rebind.test"]


def test_dns_failure_message():
    def failing(host, port):
        raise OSError("no such host")

    with pytest.raises(FetchError) as error:
        fetch("http://does-not-exist.invalid/", resolver=failing)
    assert error.value.kind == "dns" and "could not be resolved" in str(error.value)


def test_http_1_0_server_that_closes_the_connection(tmp_path):
    """A plain HTTP/1.0 server (no keep-alive, no Content-Length needed) is read to the end."""
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    (tmp_path / "page.html").write_text("<html><head><title>Old server</title></head><body><p>"
                                        + "Plain old page text. " * 20 + "</p></body></html>")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = fetch(f"http://127.0.0.1:{server.server_address[1]}/page.html", policy=AddressPolicy(("127.0.0.1",)))
        assert result.status == 200 and "Plain old page text." in result.text and "Old server" in result.text
    finally:
        server.shutdown()
        server.server_close()


def test_the_shipped_sample_pages_are_read_from_disk_and_nothing_else_internal_is(home):
    """A newcomer with no internet can snapshot the app's own sample pages; any other internal address, or a
    path that leaves the samples folder, is still refused."""
    from core.library.fetch import SAMPLES_PATH, sample_page, sample_pages
    from core.library.snapshots import snapshot_url
    from core.storage.db import get_engine

    assert len(sample_pages()) >= 3
    for name in sample_pages():
        outcome = snapshot_url(get_engine(), f"http://127.0.0.1:8501{SAMPLES_PATH}{name}", ["samples"])
        assert not outcome.snapshot.error and len(outcome.snapshot.text) > 200, name
    refused = [f"http://127.0.0.1:8501{SAMPLES_PATH}..%2F..%2Fpyproject.toml",
               f"http://127.0.0.1:8501{SAMPLES_PATH}../../app.py", f"http://127.0.0.1:8501{SAMPLES_PATH}missing.html",
               "http://127.0.0.1:8501/app/static/other.html", f"http://10.0.0.5{SAMPLES_PATH}{sample_pages()[0]}"]
    for url in refused:
        assert sample_page(url) is None, url  # never read from disk
        outcome = snapshot_url(get_engine(), url)
        assert outcome.snapshot is None or outcome.snapshot.error, url
