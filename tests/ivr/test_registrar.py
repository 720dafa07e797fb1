"""The registrar's files and parsing: what Kamailio loads at start, and who is registered."""

from __future__ import annotations

import subprocess

import pytest

from hotline.settings import Settings
from ivr import kamailio, registrar

pytestmark = pytest.mark.skipif(kamailio.find_binary(Settings()) is None, reason="kamailio is not installed")

DUMP = """{
	Domains: {
		Domain: {
			AoRs: {
				Info: {
					AoR: 8001
					Contacts: {
						Contact: {
							Address: sip:8001@127.0.0.1:47201;ob
							Expires: 59
						}
					}
				}
				Info: {
					AoR: 8002
					Contacts: {
						Contact: {
							Expires: deleted
						}
					}
				}
			}
		}
	}
}"""


def test_a_live_contact_counts_as_registered_and_an_expired_one_does_not() -> None:
    assert registrar.registered_extensions(DUMP) == {"8001"}


@pytest.mark.parametrize(
    ("seats", "numbers"),
    [({}, []), ({"8001": "s3cret-Passw0rd_x", "8002": "another-0ne.secret"}, ["12319", "+8685112345"])],
)
def test_kamailio_starts_with_the_tables_file_with_or_without_seats_and_transfer_numbers(
    settings: Settings, seats: dict[str, str], numbers: list[str]
) -> None:
    cfg = kamailio.render(settings)
    path = kamailio.seat_credentials_path(settings)
    tables = {registrar.HTABLE: seats, registrar.XFER: registrar.transfer_entries(numbers)}
    registrar.write_tables(path, tables)
    assert path.stat().st_mode & 0o777 == 0o600  # passwords: readable by the hotline only
    argv = kamailio.command(settings, cfg)
    check = subprocess.run([argv[0], "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=10)
    assert check.returncode == 0, check.stderr
    assert all(password in path.read_text() for password in seats.values())
    assert all(f"$sht(xfer=>{n}) " in path.read_text() for n in ("12319", "+12319", "8685112345") if numbers)
