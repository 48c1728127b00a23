"""Config loader: typed values, defaults, and one clear error naming key and file."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.config import Secret, SourceSettings, load_config, parse_config
from archiver.errors import ConfigError
from archiver.sources.devicefarm import DeviceFarmSettings
from archiver.sources.devrev import DevRevSettings
from archiver.sources.ekran import EkranSettings
from archiver.sources.perfecto import PerfectoSettings
from archiver.sources.testmo import TestmoSettings
from archiver.sources.testobject import TestObjectSettings

MINIMAL = """
[store]
url = "file:///var/lib/archiver/evidence"
[state]
url = "sqlite:////var/lib/archiver/state.db"
[sources.perfecto]
base_url = "https://mycloud.app.perfectomobile.com"
token_env = "PERFECTO_TOKEN"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "archiver.toml"
    path.write_text(text)
    return path


def test_minimal_config_with_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERFECTO_TOKEN", "tok-123456")
    config = load_config(write(tmp_path, MINIMAL))
    assert config.store.url == "file:///var/lib/archiver/evidence"
    assert config.engine.download_concurrency == 16
    perfecto = config.sources["perfecto"]
    assert isinstance(perfecto, PerfectoSettings)
    assert perfecto.token == Secret("tok-123456")
    assert perfecto.auth_header == "PERFECTO-AUTHORIZATION"
    assert perfecto.backfill_days == 30
    assert "tok-123456" not in repr(config)


def test_config_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERFECTO_TOKEN", "tok-123456")
    monkeypatch.setenv("ARCHIVER_CONFIG", str(write(tmp_path, MINIMAL)))
    assert "perfecto" in load_config().sources


def test_absent_source_table_disables_it(tmp_path: Path) -> None:
    text = MINIMAL.split("[sources.perfecto]")[0]
    assert load_config(write(tmp_path, text)).sources == {}


def test_s3_store_with_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    data = {
        "store": {
            "url": "s3://bucket/prefix",
            "endpoint_url": "http://127.0.0.1:9000",
            "region": "eu-west-1",
        },
        "state": {"url": "sqlite:////tmp/x.db"},
    }
    config = parse_config(data, path="x.toml", environ={})
    assert config.store.endpoint_url == "http://127.0.0.1:9000"
    assert config.store.region == "eu-west-1"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (MINIMAL.replace("file:///var", "ftp:///var"), "store.url"),
        (
            MINIMAL.replace('token_env = "PERFECTO_TOKEN"', 'token_env = "NOPE_UNSET"'),
            "sources.perfecto.token_env",
        ),
        (MINIMAL + '[engine]\ndownload_concurrency = "eight"\n', "engine.download_concurrency"),
        (MINIMAL + "[engine]\ndownload_concurrency = 0\n", "engine.download_concurrency"),
        (MINIMAL + "[engine]\ninterval_seconds = true\n", "engine.interval_seconds"),
        (MINIMAL + "[engine]\ndownload_concurency = 3\n", "engine.download_concurency"),
        (
            MINIMAL.replace('token_env = "PERFECTO_TOKEN"', 'token = "abc"'),
            "sources.perfecto.token",
        ),
        (MINIMAL.replace("https://mycloud", "mycloud"), "sources.perfecto.base_url"),
        (MINIMAL.replace("sqlite:", "mysql:"), "state.url"),
        (MINIMAL.replace("file:///var", "file://var"), "store.url"),
        (MINIMAL.replace("file:///var", "file://evidence/var"), "store.url"),
        (MINIMAL.replace("file:///var/lib/archiver/evidence", "s3:///prefix"), "store.url"),
        (MINIMAL.replace("sqlite:////var", "sqlite://var"), "state.url"),
        (MINIMAL.replace("sqlite:////var/lib/archiver/state.db", "sqlite:////var/"), "state.url"),
        (MINIMAL.replace('[state]\nurl = "sqlite:////var/lib/archiver/state.db"\n', ""), "state"),
        (MINIMAL + "retention_days = 0\n", "sources.perfecto.retention_days"),
        (
            MINIMAL + "retention_days = 10\nretention_warn_days = 10\n",
            "sources.perfecto.retention_warn_days",
        ),
    ],
)
def test_bad_values_name_key_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, key: str
) -> None:
    monkeypatch.setenv("PERFECTO_TOKEN", "tok-123456")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == key
    assert f"'{key}'" in str(caught.value)
    assert str(path) in str(caught.value)
    assert "tok-123456" not in str(caught.value)


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[store\nurl = 1")
    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        load_config(path)
    assert str(path) in str(caught.value)


def test_missing_file_and_no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    monkeypatch.delenv("ARCHIVER_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="ARCHIVER_CONFIG"):
        load_config(None)


def test_secret_never_shows_its_value() -> None:
    secret = Secret("super-secret-token")
    assert "super-secret-token" not in repr(secret)
    assert "super-secret-token" not in str(secret)
    assert "super-secret-token" not in f"{secret}"
    assert secret.reveal() == "super-secret-token"


DEVREV = """
[store]
url = "file:///var/lib/archiver/evidence"
[state]
url = "sqlite:////var/lib/archiver/state.db"
[sources.devrev]
base_url = "https://api.devrev.ai"
token_env = "DEVREV_TOKEN"
version_key = "my-app-id"
type = "mobile"
platform = "android"
"""


def test_devrev_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVREV_TOKEN", "devrev-token-123")
    devrev = load_config(write(tmp_path, DEVREV)).sources["devrev"]
    assert isinstance(devrev, DevRevSettings)
    assert devrev.version_keys == ("my-app-id",)
    assert (devrev.session_type, devrev.platform, devrev.page_limit) == ("mobile", "android", 50)
    many = DEVREV.replace('"my-app-id"', '["app-a", "app-b"]').replace('platform = "android"\n', "")
    devrev = load_config(write(tmp_path, many)).sources["devrev"]
    assert isinstance(devrev, DevRevSettings)
    assert devrev.version_keys == ("app-a", "app-b") and devrev.platform is None


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (('version_key = "my-app-id"\n', ""), "sources.devrev.version_key"),
        (('type = "mobile"', 'type = "desktop"'), "sources.devrev.type"),
        (('platform = "android"', 'platform = "symbian"'), "sources.devrev.platform"),
        (('type = "mobile"', 'type = "mobile"\nlimit = 500'), "sources.devrev.limit"),
        (
            ('token_env = "DEVREV_TOKEN"', 'token_env = "NOT_SET_ANYWHERE"'),
            "sources.devrev.token_env",
        ),
    ],
)
def test_devrev_bad_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: tuple[str, str], key: str
) -> None:
    monkeypatch.setenv("DEVREV_TOKEN", "devrev-token-123")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, DEVREV.replace(*change)))
    assert caught.value.key == key


BASE = """
[store]
url = "file:///var/lib/archiver/evidence"
[state]
url = "sqlite:////var/lib/archiver/state.db"
"""


def test_testobject_testmo_ekran_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("TESTOBJECT_API_KEY", "TESTMO_TOKEN", "EKRAN_TOKEN"):
        monkeypatch.setenv(variable, f"{variable.lower()}-value")
    text = (
        BASE
        + """
[sources.testobject]
base_url = "https://app.testobject.com"
username = "foobar"
[sources.testmo]
base_url = "https://acme.testmo.net"
project_ids = [1, 5]
per_page = 50
[sources.ekran]
base_url = "https://ekran.example.local"
auth_header = "X-Api-Key"
session_count = 500
"""
    )
    sources = load_config(write(tmp_path, text)).sources
    testobject, testmo, ekran = sources["testobject"], sources["testmo"], sources["ekran"]
    assert isinstance(testobject, TestObjectSettings) and testobject.username == "foobar"
    assert testobject.token.reveal() == "testobject_api_key-value"
    assert isinstance(testmo, TestmoSettings) and testmo.project_ids == (1, 5)
    assert testmo.per_page == 50 and "users" in testmo.expands
    assert isinstance(ekran, EkranSettings) and ekran.session_count == 500
    assert ekran.auth_header == "X-Api-Key"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('[sources.testobject]\nbase_url = "https://a.b"\n', "sources.testobject.username"),
        (
            '[sources.testobject]\nbase_url = "https://a.b"\nusername = "u"\nbackfill_days = 31\n',
            "sources.testobject.backfill_days",
        ),
        ('[sources.testmo]\nbase_url = "https://a.b"\n', "sources.testmo.project_ids"),
        (
            '[sources.testmo]\nbase_url = "https://a.b"\nproject_ids = [1]\nper_page = 30\n',
            "sources.testmo.per_page",
        ),
        (
            '[sources.testmo]\nbase_url = "https://a.b"\nproject_ids = ["one"]\n',
            "sources.testmo.project_ids",
        ),
        (
            '[sources.ekran]\nbase_url = "https://a.b"\nsession_count = 1001\n',
            "sources.ekran.session_count",
        ),
    ],
)
def test_new_source_bad_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str, key: str
) -> None:
    for variable in ("TESTOBJECT_API_KEY", "TESTMO_TOKEN", "EKRAN_TOKEN"):
        monkeypatch.setenv(variable, "some-token-value")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, BASE + table))
    assert caught.value.key == key


def test_example_config_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERFECTO_TOKEN", "tok-123456")
    example = Path(__file__).parents[2] / "config" / "archiver.example.toml"
    config = load_config(example)
    assert set(config.sources) == {"perfecto"}
    assert config.store.url.startswith("file:///")


S3_STORE = """
[store]
url = "s3://evidence-bucket/archiver"
{extra}
[state]
url = "sqlite:////var/lib/archiver/state.db"
"""


def test_s3_retention_and_encryption_keys(tmp_path: Path) -> None:
    extra = """object_lock_mode = "COMPLIANCE"
object_lock_days = 2555
legal_hold = true
sse = "aws:kms"
sse_kms_key_id = "arn:aws:kms:eu-west-1:111122223333:key/abc"
storage_class = "STANDARD_IA"
"""
    store = load_config(write(tmp_path, S3_STORE.format(extra=extra))).store
    assert (store.object_lock_mode, store.object_lock_days, store.legal_hold) == (
        "COMPLIANCE",
        2555,
        True,
    )
    assert (store.sse, store.sse_kms_key_id, store.storage_class) == (
        "aws:kms",
        "arn:aws:kms:eu-west-1:111122223333:key/abc",
        "STANDARD_IA",
    )
    plain = load_config(write(tmp_path, S3_STORE.format(extra=""))).store
    assert plain.object_lock_mode is None and not plain.legal_hold and plain.sse is None


@pytest.mark.parametrize(
    ("extra", "key", "message"),
    [
        ('object_lock_mode = "STRICT"', "store.object_lock_mode", "GOVERNANCE, COMPLIANCE"),
        ('object_lock_mode = "GOVERNANCE"', "store.object_lock_days", "is required"),
        ("object_lock_days = 30", "store.object_lock_days", "needs object_lock_mode"),
        (
            'object_lock_mode = "GOVERNANCE"\nobject_lock_days = 0',
            "store.object_lock_days",
            ">= 1|at least 1",
        ),
        ('sse = "DES"', "store.sse", "AES256, aws:kms"),
        ('sse = "AES256"\nsse_kms_key_id = "k"', "store.sse_kms_key_id", "aws:kms"),
        ('storage_class = "GLACIER"', "store.storage_class", "STANDARD"),
    ],
)
def test_s3_retention_mistakes(tmp_path: Path, extra: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(write(tmp_path, S3_STORE.format(extra=extra)))
    assert caught.value.key == key


def test_s3_keys_refused_for_a_file_store(tmp_path: Path) -> None:
    text = MINIMAL.replace("[state]", "legal_hold = true\n[state]")
    with pytest.raises(ConfigError, match="s3:// stores only") as caught:
        load_config(write(tmp_path, text))
    assert caught.value.key == "store.legal_hold"


def test_store_only_commands_need_no_vendor_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PERFECTO_TOKEN", raising=False)
    config = load_config(write(tmp_path, MINIMAL), with_sources=False)
    assert config.sources == {}
    with pytest.raises(ConfigError, match="PERFECTO_TOKEN"):
        load_config(write(tmp_path, MINIMAL))


def test_status_reads_the_sources_without_their_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PERFECTO_TOKEN", raising=False)
    path = write(tmp_path, MINIMAL + "retention_days = 14\n")

    config = load_config(path, read_tokens=False)

    perfecto = config.sources["perfecto"]
    assert (perfecto.retention_days, perfecto.retention_warn_days) == (14, 7)
    assert perfecto.token.reveal() == ""
    with pytest.raises(ConfigError, match="never read from the file"):
        load_config(write(tmp_path, MINIMAL + 'token = "abc"\n'), read_tokens=False)


def test_a_token_shows_nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import TypeAdapter

    monkeypatch.setenv("PERFECTO_TOKEN", "tok-123456")
    config = load_config(write(tmp_path, MINIMAL))
    perfecto = config.sources["perfecto"]
    assert perfecto.token.reveal() == "tok-123456"
    dumped = TypeAdapter(SourceSettings).dump_python(perfecto, mode="json")
    for shown in (repr(config), str(perfecto), str(dumped)):
        assert "tok-123456" not in shown


def test_settings_built_in_code_are_not_checked_against_the_file_rules() -> None:
    """A test may ask a vendor for more than a file could (here 5000 sessions a page)."""
    from dataclasses import replace

    settings = EkranSettings(base_url="http://127.0.0.1:1", token=Secret("t"), session_count=5000)
    assert replace(settings, session_count=1).session_count == 1
    with pytest.raises(AttributeError):
        settings.session_count = 2  # type: ignore[misc]  # frozen


def test_every_source_is_registered_once_in_order() -> None:
    from archiver.sources import source_factories
    from archiver.sources.registry import SOURCES

    names = [spec.name for spec in SOURCES]
    assert names == [
        "perfecto",
        "devrev",
        "testobject",
        "testmo",
        "ekran",
        "saucelabs",
        "browserstack",
        "devicefarm",
    ]
    assert list(source_factories()) == names
    for spec in SOURCES:
        if "token_env" in spec.settings.file_keys():  # Device Farm's are AWS credentials
            assert spec.settings.CREDENTIAL_VARIABLE.endswith(("_TOKEN", "_API_KEY", "_ACCESS_KEY"))
        assert spec.not_offered.endswith(".")


DEVICEFARM = """
[store]
url = "file:///var/lib/archiver/evidence"
[state]
url = "sqlite:////var/lib/archiver/state.db"
[sources.devicefarm]
"""


def test_devicefarm_needs_no_token_variable_and_derives_its_endpoint(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, DEVICEFARM + 'profile = "df"\n'))
    settings = config.sources["devicefarm"]
    assert isinstance(settings, DeviceFarmSettings)
    assert settings.token_env is None and settings.profile == "df"
    assert settings.base_url == "https://devicefarm.us-west-2.amazonaws.com"
    endpoint = load_config(write(tmp_path, DEVICEFARM + 'endpoint_url = "http://127.0.0.1:9/"\n'))
    assert endpoint.sources["devicefarm"].base_url == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("line", "key", "message"),
    [
        ('project_arns = ["arn:aws:s3:::bucket"]', "project_arns", "not a Device Farm project"),
        ('token_env = "AWS_SECRET_ACCESS_KEY"', "token_env", "unknown key"),
        ('base_url = "https://devicefarm.example"', "base_url", "unknown key"),
        ('endpoint_url = "devicefarm.us-west-2.amazonaws.com"', "endpoint_url", "http(s) URL"),
        ("api_concurrency = 65", "api_concurrency", "at most 64"),
    ],
)
def test_devicefarm_mistakes(tmp_path: Path, line: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, DEVICEFARM + line + "\n"))
    assert caught.value.key == f"sources.devicefarm.{key}"
    assert message in str(caught.value)
