"""Settings come in layers, and a bad or unknown one stops start-up naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.settings import SettingsError, load_settings


def test_defaults_are_the_embedded_single_machine(tmp_path: Path) -> None:
    settings = load_settings(environ={}, config_file=tmp_path / "none.toml")
    assert (settings.sip_host, settings.sip_port) == ("127.0.0.1", 5060)
    assert (settings.web_host, settings.web_port) == ("127.0.0.1", 8000)
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.embedded_redis and settings.effective_redis_url.startswith("unix://")
    # The default pool carries at least 64 callers, each with a leg kept for its seat.
    assert settings.sip_workers * (settings.sip_legs_per_worker // 2) >= 64


def test_file_then_environment_then_platform_urls(tmp_path: Path) -> None:
    config = tmp_path / "hotline.toml"
    config.write_text('log_level = "DEBUG"\n[sip]\nport = 5080\nworkers = 4\n[web]\nport = 9000\n')
    settings = load_settings(
        environ={"HOTLINE_WEB_PORT": "9100", "REDIS_URL": "redis://127.0.0.1:6379/3"}, config_file=config
    )
    assert settings.sip_port == 5080  # file
    assert settings.sip_workers == 4  # file, flattened from [sip]
    assert settings.log_level == "DEBUG"
    assert settings.web_port == 9100  # environment beats file
    assert settings.effective_redis_url == "redis://127.0.0.1:6379/3"
    assert not settings.embedded_redis


@pytest.mark.parametrize(
    ("environ", "config", "names"),
    [
        ({"HOTLINE_SIP_PORT": "abc"}, "", ["sip_port", "HOTLINE_SIP_PORT"]),
        ({"HOTLINE_SIP_PORT": "70000"}, "", ["sip_port"]),
        ({"HOTLINE_SIP_PROT": "5060"}, "", ["sip_prot", "HOTLINE_SIP_PROT"]),
        ({}, "[sip]\nprot = 5060\n", ["sip_prot", "hotline.toml"]),
        ({}, "web_port = 'eighty'\n", ["web_port", "hotline.toml"]),
        ({}, "web_port = [\n", ["hotline.toml"]),
    ],
)
def test_bad_or_unknown_settings_name_the_key(
    tmp_path: Path, environ: dict[str, str], config: str, names: list[str]
) -> None:
    path = tmp_path / "hotline.toml"
    if config:
        path.write_text(config)
    with pytest.raises(SettingsError) as err:
        load_settings(environ=environ, config_file=path)
    for name in names:
        assert name in str(err.value)


def test_cli_exits_2_with_one_line_naming_the_setting(run_hotline, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run_hotline("config", "show", env={"HOTLINE_SIP_PORT": "abc"}, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "sip_port" in lines[0] and "HOTLINE_SIP_PORT" in lines[0]
    assert result.stdout == ""


def test_config_show_masks_secrets(run_hotline, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run_hotline(
        "config",
        "show",
        env={
            "DATABASE_URL": "postgresql+psycopg://hotline:s3cret-pw@db.example/hotline",
            "HOTLINE_SECRET_KEY": "very-secret-key",
        },
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "s3cret-pw" not in result.stdout and "very-secret-key" not in result.stdout
    assert 'database_url = "postgresql+psycopg://hotline:***@db.example/hotline"' in result.stdout
    assert "sip_port = 5060" in result.stdout
