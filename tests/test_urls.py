import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.library.urls import InvalidURLError, normalize_url


@pytest.mark.parametrize(("raw", "expected"), [
    ("HTTP://Example.COM:80/a?b=2&a=1#frag", "http://example.com/a?a=1&b=2"),
    ("https://example.com:443/", "https://example.com/"),
    ("https://example.com", "https://example.com/"),
    ("https://example.com:8443/x", "https://example.com:8443/x"),
    ("https://example.com/p?utm_source=x&utm_Medium=y&id=3&fbclid=z&gclid=q", "https://example.com/p?id=3"),
    ("  https://example.com/a b  ", "https://example.com/a%20b"),
    ("https://bücher.example/", "https://xn--bcher-kva.example/"),
])
def test_normalize_examples(raw, expected):
    assert normalize_url(raw) == expected


@pytest.mark.parametrize("bad", ["", "ftp://example.com/x", "javascript:alert(1)", "example.com/page",
                                 "http:///nohost", "http://example.com:99999/"])
def test_invalid_urls_are_refused_with_a_message(bad):
    with pytest.raises(InvalidURLError) as error:
        normalize_url(bad)
    assert str(error.value)


hosts = st.from_regex(r"[a-z][a-z0-9]{0,10}\.(com|org|net)", fullmatch=True)
params = st.lists(st.tuples(st.from_regex(r"[a-z]{1,6}", fullmatch=True),
                            st.from_regex(r"[a-z0-9]{0,6}", fullmatch=True)), max_size=5)


@given(host=hosts, path=st.from_regex(r"(/[a-z0-9]{1,8}){0,3}", fullmatch=True), query=params,
       tracking=params, upper=st.booleans(), fragment=st.from_regex(r"[a-z]{0,5}", fullmatch=True))
def test_normalization_properties(host, path, query, tracking, upper, fragment):
    q = "&".join(f"{k}={v}" for k, v in query + [(f"utm_{k}", v) for k, v in tracking])
    url = f"{'HTTPS' if upper else 'https'}://{host.upper() if upper else host}:443{path}?{q}#{fragment}"
    normalized = normalize_url(url)
    assert normalize_url(normalized) == normalized  # idempotent
    assert "#" not in normalized and "utm_" not in normalized and ":443" not in normalized
    assert normalized.startswith(f"https://{host}/")
    # parameter order does not matter
    shuffled = f"https://{host}{path}?{'&'.join(f'{k}={v}' for k, v in reversed(query))}"
    assert normalize_url(shuffled) == normalized
