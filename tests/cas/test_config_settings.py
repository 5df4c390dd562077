from pathlib import Path

import pytest

from cas.config import DEFAULT_MAX_PIXELS, Settings, StoreConfig
from cas.errors import InvalidInput


def test_defaults_with_an_empty_environment():
    s = Settings.from_env({"XDG_DATA_HOME": "/data"})
    assert s.store == Path("/data/cas")
    assert (s.max_pixels, s.mount_trace, s.net.retries) == (DEFAULT_MAX_PIXELS, False, 3)
    assert not s.net.public_links_only


def test_every_variable_is_read():
    s = Settings.from_env({"CAS_STORE": "/s", "CAS_CONNECT_TIMEOUT": "1", "CAS_READ_TIMEOUT": "2", "CAS_RETRIES": "0",
                           "CAS_READ_DEADLINE": "30", "CAS_PUBLIC_LINKS_ONLY": "1", "CAS_MAX_PIXELS": "100",
                           "CAS_MOUNT_TRACE": "1"})
    assert (s.store, s.net.connect_timeout, s.net.read_timeout, s.net.retries) == (Path("/s"), 1.0, 2.0, 0)
    assert (s.net.deadline, s.net.public_links_only, s.max_pixels, s.mount_trace) == (30.0, True, 100, True)


@pytest.mark.parametrize("name", ["CAS_READ_TIMEOUT", "CAS_MAX_PIXELS", "CAS_RETRIES"])
def test_a_bad_value_names_its_variable(name):
    with pytest.raises(InvalidInput, match=rf"\${name}: not a number: 'soon'"):
        Settings.from_env({name: "soon"})


@pytest.mark.parametrize(("doc", "message"), [
    ('{"s3": {"bucket": "b", "zone": "x"}}', r"config.json: s3: expected an object with a bucket"),
    ('{"s3": "s3://b/x"}', r"config.json: s3: expected an object with a bucket"),
    ('{"allow_roots": "/data"}', r"config.json: allow_roots: expected a list of folders"),
    ('[1, 2]', r"config.json: expected a JSON object"),
    ('{"cache_size": "lots"}', r"cache_size"),
    ('{"s3_grace_seconds": -1}', r"config.json: s3_grace_seconds: expected a number of seconds, 0 or more"),
    ('{"s3_grace_seconds": "1d"}', r"config.json: s3_grace_seconds: expected a number of seconds"),
])
def test_a_bad_store_config_names_its_field(tmp_path, doc, message):
    (tmp_path / "config.json").write_text(doc)
    with pytest.raises(InvalidInput, match=message) as e:
        StoreConfig.load(tmp_path)
    assert "__init__" not in str(e.value) and "TypeError" not in str(e.value)


def test_the_s3_grace_period_is_kept_with_the_store(tmp_path):
    assert StoreConfig.load(tmp_path).s3_grace_seconds == 86400  # a day: pushes elsewhere are done by then
    StoreConfig(s3_grace_seconds=0).save(tmp_path)
    assert StoreConfig.load(tmp_path).s3_grace_seconds == 0
