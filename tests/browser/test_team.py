"""Journey 19, a team behind a real authenticating proxy: Debian's nginx with basic authentication puts the signed-in
user in a header and connects to the app from an address of its own (`proxy_bind 127.0.0.2`), the only address the
app believes that header from. Two people sign in and leave notes; the Findings board shows both under the right
names; a request that bypasses the proxy with a forged header is not believed; without authentication configured
the app is one "local" person, as before."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import free_port, screenshot, serving

pytestmark = pytest.mark.browser
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HEADER = "X-Rashomon-User"
PASSWORDS = {"ana": "ana-secret", "bo": "bo-secret"}

CONFIG = """{user}worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log {dir}/access.log;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  server {{
    listen 127.0.0.1:{port};
    auth_basic "Rashomon";
    auth_basic_user_file {dir}/htpasswd;
    location / {{
      proxy_pass http://127.0.0.1:{app_port};
      proxy_bind 127.0.0.2;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header {header} $remote_user;
      proxy_read_timeout 600s;
    }}
  }}
}}
"""


@contextlib.contextmanager
def nginx_in_front(app_url: str, directory: Path):
    """nginx on a free port with basic authentication, passing the user to the app in HEADER from 127.0.0.2."""
    if not Path(NGINX).exists():
        pytest.fail(f"{NGINX} is missing: `make test` installs Debian's nginx (apt-get install nginx-light).")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "htpasswd").write_text("".join(f"{user}:{{PLAIN}}{password}\n" for user, password in PASSWORDS.items()))
    port = free_port()
    config = directory / "nginx.conf"
    config.write_text(CONFIG.format(user="user root;\n" if os.geteuid() == 0 else "", dir=directory, port=port,
                                    app_port=app_url.rsplit(":", 1)[1], header=HEADER))
    process = subprocess.Popen([NGINX, "-p", str(directory), "-c", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:  # up once it answers, and asks for credentials
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"nginx did not start: {(directory / 'error.log').read_text() if (directory / 'error.log').exists() else ''}")
        time.sleep(0.2)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture(scope="module")
def team(tmp_path_factory, tiny_model_dir):
    home = tmp_path_factory.mktemp("team-home")
    env = {**os.environ, "RASHOMON_HOME": str(home), "RASHOMON_MODEL": str(tiny_model_dir), "HF_HUB_OFFLINE": "1",
           "RASHOMON_TASK_WORKERS": "0", "RASHOMON_AUTH_HEADER": HEADER, "RASHOMON_TRUSTED_PROXIES": "127.0.0.2"}
    for name in ("RASHOMON_DATABASE_URL", "RASHOMON_MODELS", "FORWARDED_ALLOW_IPS"):
        env.pop(name, None)
    logs = tmp_path_factory.mktemp("team-logs")
    with serving(env, logs / "streamlit.log") as (app_url, _process), nginx_in_front(app_url, logs / "nginx") as proxy:
        yield {"app": app_url, "proxy": proxy}


def person_page(browser, user: str | None, headers: dict[str, str] | None = None):
    credentials = {"username": user, "password": PASSWORDS[user]} if user else None
    context = browser.new_context(viewport={"width": 1500, "height": 1000}, http_credentials=credentials,
                                  extra_http_headers=headers or {})
    context.set_default_timeout(60_000)
    return context, context.new_page()


def leave_finding(page, text: str, verdict: str) -> None:
    form = page.get_by_test_id("stForm").filter(has=page.get_by_label("Your note (Markdown; no HTML or images)"))
    expect(page.get_by_text("You are ")).to_be_visible()  # the page's run reached the board
    details = page.locator("[data-testid='stExpander'] details").filter(has_text="Write a finding of your own")
    if details.get_attribute("open") is None:  # collapsed once there are notes
        page.get_by_text("Write a finding of your own").click()
    form.get_by_label("Your note (Markdown; no HTML or images)").fill(text)
    form.get_by_role("radiogroup", name="Verdict").get_by_text(verdict, exact=True).click()
    expect(form.get_by_role("radio", name=verdict)).to_be_checked()
    form.get_by_role("button", name="Leave the note").click()
    expect(page.get_by_text("saved, by")).to_be_visible()


def test_19_two_people_behind_the_proxy_leave_notes_and_a_forged_header_is_not_believed(browser, team, app_server):
    sidebar = "[data-testid='stSidebar']"
    with urllib.request.urlopen(f"{team['app']}/_stcore/health", timeout=5) as direct:
        assert direct.status == 200  # the app itself is up; through the proxy, nobody gets in without signing in
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{team['proxy']}/Findings", timeout=5)
    assert refused.value.code == 401

    ana_context, ana = person_page(browser, "ana")
    ana.goto(f"{team['proxy']}/Findings")
    expect(ana.locator(sidebar).get_by_text("ana", exact=True)).to_be_visible()
    expect(ana.locator(sidebar).get_by_text("signed in through the authenticating proxy")).to_be_visible()
    leave_finding(ana, "Ana: **SHAP** follows the topic, not the sentiment. <script>window.pwned = 1</script> "
                       "![tracker](http://127.0.0.1:9/t.png)", "model error: spurious feature")

    bo_context, bo = person_page(browser, "bo")
    bo.goto(f"{team['proxy']}/Findings")
    expect(bo.locator(sidebar).get_by_text("bo", exact=True)).to_be_visible()
    expect(bo.get_by_text("Ana: SHAP follows the topic")).to_be_visible()  # the team's board: Ana's note
    leave_finding(bo, "Bo: the label of tweet 17 is wrong.", "label wrong")
    bo.reload()
    board = bo.get_by_test_id("stMain")
    expect(board.get_by_text("Bo: the label of tweet 17 is wrong.")).to_be_visible()
    # each note under its author's name, with its verdict
    # "· " marks a note's line: the form's verdict radio has the same words, and can come first in the page
    expect(board.locator("p").filter(has_text="· model error: spurious feature").first).to_contain_text("ana ·")
    expect(board.locator("p").filter(has_text="· label wrong").first).to_contain_text("bo ·")
    # Ana's note rendered inert: the script tag shown as text, never run; the image never requested
    expect(board.get_by_text("<script>window.pwned = 1</script>")).to_be_visible()
    assert bo.evaluate("() => window.pwned") is None
    assert bo.locator("[data-testid='stMain'] img[src*='127.0.0.1:9']").count() == 0
    # only the author edits: Bo sees the edit box on his note only
    expect(board.get_by_role("switch", name="Edit your note")).to_have_count(1)
    screenshot(bo, "19-findings-board", height=1400)
    ana_context.close()
    bo_context.close()

    # Around the proxy, straight to the app, with the header (and a forwarded-for naming the proxy) forged
    forged_context, forged = person_page(browser, None, {HEADER: "ana", "X-Forwarded-For": "127.0.0.2"})
    forged.goto(f"{team['app']}/Findings")
    expect(forged.locator(sidebar).get_by_text("anonymous", exact=True)).to_be_visible()
    expect(forged.locator(sidebar).get_by_text("it was ignored", exact=False)).to_be_visible()
    forged_context.close()

    # No authentication configured (the other journeys' server): one person, "local", as before
    local_context, local = person_page(browser, None)
    local.goto(f"{app_server['url']}/Findings")
    expect(local.locator(sidebar).get_by_text("local", exact=True)).to_be_visible()
    expect(local.locator(sidebar).get_by_text("no authentication configured")).to_be_visible()
    local_context.close()


SECRETS = """[auth]
redirect_uri = "{app}/oauth2callback"
cookie_secret = "{cookie}"
client_id = "rashomon"
client_secret = "rashomon-secret"
server_metadata_url = "{issuer}/.well-known/openid-configuration"
"""


@pytest.fixture(scope="module")
def oidc(tmp_path_factory, tiny_model_dir):
    """A real OpenID Connect provider on this machine (oidc-provider-mock: Authlib's server with signed ID tokens
    and a login form) and the app configured for Streamlit's login (`st.login`) against it."""
    import secrets

    from oidc_provider_mock import run_server_in_thread

    home = tmp_path_factory.mktemp("oidc-home")
    logs = tmp_path_factory.mktemp("oidc-logs")
    env = {**os.environ, "RASHOMON_HOME": str(home), "RASHOMON_MODEL": str(tiny_model_dir), "HF_HUB_OFFLINE": "1",
           "RASHOMON_TASK_WORKERS": "0"}
    for name in ("RASHOMON_DATABASE_URL", "RASHOMON_MODELS", "RASHOMON_AUTH_HEADER", "RASHOMON_TRUSTED_PROXIES"):
        env.pop(name, None)
    port = free_port()
    app = f"http://127.0.0.1:{port}"
    with run_server_in_thread() as provider:
        issuer = f"http://localhost:{provider.server_port}"
        secrets_file = logs / "secrets.toml"
        secrets_file.write_text(SECRETS.format(app=app, cookie=secrets.token_hex(32), issuer=issuer))
        with serving(env, logs / "streamlit.log", port=port, args=("--secrets.files", str(secrets_file))) as (url, _):
            yield {"app": url, "issuer": issuer}


def test_20_a_person_signs_in_through_openid_connect_and_their_note_carries_their_name(browser, oidc):
    import json

    sidebar = "[data-testid='stSidebar']"
    request = urllib.request.Request(f"{oidc['issuer']}/users/ana%40example.com", method="PUT",
                                     data=json.dumps({"email": "ana@example.com", "name": "Ana"}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:  # the provider knows Ana's claims
        assert answer.status == 204
    context, page = person_page(browser, None)
    page.goto(f"{oidc['app']}/Findings")
    expect(page.locator(sidebar).get_by_text("anonymous", exact=True)).to_be_visible()
    expect(page.locator(sidebar).get_by_text("not signed in")).to_be_visible()
    page.locator(sidebar).get_by_role("button", name="Log in").click()
    page.get_by_placeholder("sub").fill("ana@example.com")  # the provider's own login form
    page.get_by_role("button", name="Authorize").click()
    expect(page.locator(sidebar).get_by_text("ana@example.com", exact=True)).to_be_visible()
    expect(page.locator(sidebar).get_by_text("signed in (OpenID Connect)")).to_be_visible()
    page.goto(f"{oidc['app']}/Findings")
    leave_finding(page, "Ana, signed in: occlusion is the account to believe here.", "needs another look")
    page.reload()
    board = page.get_by_test_id("stMain")
    expect(board.locator("p").filter(has_text="· needs another look").first).to_contain_text("ana@example.com ·")
    page.locator(sidebar).get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="End session").click()  # the provider's end-of-session page
    expect(page.locator(sidebar).get_by_text("anonymous", exact=True)).to_be_visible()
    expect(page.locator(sidebar).get_by_role("button", name="Log in")).to_be_visible()
    context.close()
