"""Every configuration error stops start-up with one clear line naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crm_inbox.config import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_file_documents_exactly_the_built_in_defaults():
    assert load_settings(ROOT / "config" / "default.toml", environ={}) == Settings()


def test_production_example_is_valid():
    settings = load_settings(ROOT / "config" / "production.example.toml", environ={})
    assert settings.database.url.startswith("postgresql")


def test_no_file_means_defaults():
    assert load_settings(None, environ={}) == Settings()


def test_file_from_environment_variable(tmp_path):
    path = write(tmp_path, '[smtp]\nport = 2600\n')
    assert load_settings(None, environ={"CRM_INBOX_CONFIG": str(path)}).smtp.port == 2600


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[smtp]\nport = 'x'\n", "config: [smtp] port: expected a whole number, got 'x'"),
        ("[smtp]\nport = 70000\n", "config: [smtp] port must be between 0 and 65535, got 70000"),
        ("[smtp]\nprot = 25\n", "config: unknown key [smtp] prot"),
        ("[smpt]\nport = 25\n", "config: unknown section [smpt]"),
        ("smtp = 1\n", "config: [smtp] must be a table"),
        ("[database]\nurl = ''\n", "config: [database] url must not be empty"),
        ("[database]\necho = 'perhaps'\n", "config: [database] echo: expected true or false, got 'perhaps'"),
        ("[mail]\ncrm_addresses = 'crm@x.de'\n", "config: [mail] crm_addresses: expected a list of strings"),
        ("[mail]\ncrm_addresses = ['not-an-address']\n", "config: [mail] crm_addresses: 'not-an-address' is not"),
        ("[mail]\ncrm_addresses = []\nsupport_addresses = []\n", "config: [mail] crm_addresses: at least one"),
        ("[mail]\ntrusted_relays = ['10.0.0.0/33']\n", "config: [mail] trusted_relays: '10.0.0.0/33' is not"),
        ("[phone]\ndefault_region = 'XX'\n", "config: [phone] default_region: unknown region 'XX'"),
        ("[smtp]\nmax_message_bytes = 10\n", "config: [smtp] max_message_bytes must be at least 1024"),
        ("[smtp\nport = 1\n", "is not valid TOML"),
        ("[documents]\nstorage = 's3'\n", "config: [documents] storage: expected one of database, directory"),
        ("[webhooks]\nallowed_private_networks = ['localhost']\n", "allowed_private_networks: 'localhost' is not"),
        ("[webhooks]\nretry_hours = 0\n", "config: [webhooks] retry_hours must be at least 1, got 0"),
    ],
)
def test_bad_values_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ={})
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"config: file not found: .*nope\.toml"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes("[web]\nhost = 'Grüße'\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_settings(path, environ={})


def test_environment_overrides_single_keys_and_secret_files(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t\n")
    settings = load_settings(write(tmp_path, "[smtp]\nport = 2600\n"), environ={
        "CRM_INBOX_SMTP_PORT": "2700",
        "CRM_INBOX_WEB_SECRET_KEY_FILE": str(secret),
        "CRM_INBOX_MAIL_STAFF_DOMAINS": "Firma.de, firma.at",
        "CRM_INBOX_TEST_DATABASE_URL": "ignored: not a section",
    })
    assert settings.smtp.port == 2700
    assert settings.web.secret_key == "s3cr3t"
    assert settings.mail.staff_domains == ("firma.de", "firma.at")


def test_environment_override_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"config: \[smtp\] port: expected a whole number"):
        load_settings(None, environ={"CRM_INBOX_SMTP_PORT": "twenty-five"})
    with pytest.raises(ConfigError, match="config: unknown key \\[smtp\\] colour"):
        load_settings(None, environ={"CRM_INBOX_SMTP_COLOUR": "blue"})
    with pytest.raises(ConfigError, match="CRM_INBOX_WEB_SECRET_KEY_FILE: cannot read"):
        load_settings(None, environ={"CRM_INBOX_WEB_SECRET_KEY_FILE": str(tmp_path / "missing")})


def test_command_line_prints_one_line_not_a_traceback(tmp_path):
    path = write(tmp_path, "[smtp]\nport = 'x'\n")
    result = subprocess.run([sys.executable, "-m", "crm_inbox", "--config", str(path), "serve"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "crm-inbox: config: [smtp] port: expected a whole number, got 'x'"


def test_serve_refuses_an_outdated_schema(tmp_path):
    path = write(tmp_path, f"[database]\nurl = 'sqlite:///{tmp_path / 'new.db'}'\n")
    result = subprocess.run([sys.executable, "-m", "crm_inbox", "--config", str(path), "serve"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    assert "has no schema yet; run: crm-inbox db upgrade" in result.stderr
