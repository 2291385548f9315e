"""X-Forwarded-For names the client only when the peer is a trusted proxy."""

from gateway.proxies import client_address, parse_networks

TRUSTED = parse_networks(["10.0.0.0/8", "127.0.0.1"])


def test_the_header_from_an_untrusted_peer_is_ignored() -> None:
    assert client_address("203.0.113.9", "198.51.100.1", TRUSTED) == "203.0.113.9"


def test_behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client() -> None:
    # The client claimed 1.2.3.4 itself; the proxy chain appended what it really saw.
    header = "1.2.3.4, 198.51.100.7, 10.1.2.3"
    assert client_address("127.0.0.1", header, TRUSTED) == "198.51.100.7"


def test_a_chain_of_trusted_proxies_only_gives_its_first_address() -> None:
    assert client_address("10.0.0.2", "10.0.0.5, 10.0.0.3", TRUSTED) == "10.0.0.5"


def test_garbage_in_the_header_counts_the_request_under_the_proxy() -> None:
    assert client_address("127.0.0.1", "not-an-address", TRUSTED) == "127.0.0.1"
    assert client_address("127.0.0.1", "", TRUSTED) == "127.0.0.1"


def test_ipv6_blocks_and_bare_addresses_both_parse() -> None:
    networks = parse_networks(["fd00::/8", "192.0.2.1", " "])
    assert client_address("fd00::1", "2001:db8::5", networks) == "2001:db8::5"
    assert client_address("192.0.2.1", "2001:db8::6", networks) == "2001:db8::6"


def test_a_misspelt_trusted_proxy_fails_the_settings_naming_it() -> None:
    import pytest
    from pydantic import ValidationError

    from gateway.settings import Settings

    with pytest.raises(ValidationError, match=r"10\.0\.0\.300"):
        Settings(trusted_proxies=["10.0.0.300"])


def test_hops_with_ports_and_mapped_ipv4_peers_are_read_as_their_addresses() -> None:
    assert client_address("127.0.0.1", "198.51.100.7:5555", TRUSTED) == "198.51.100.7"
    assert client_address("127.0.0.1", "[2001:db8::9]:443", TRUSTED) == "2001:db8::9"
    assert client_address("::ffff:10.0.0.2", "198.51.100.8", TRUSTED) == "198.51.100.8"
