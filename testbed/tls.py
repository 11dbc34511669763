"""A throw-away certificate authority for TLS tests (needs `cryptography`, a test extra).

`make_pki(directory)` writes a CA, a server certificate for 127.0.0.1/localhost signed
by it, and an unrelated "rogue" CA, and returns their paths plus a ready server-side
`ssl.SSLContext` for `HeketiTestServer(tls=...)`.
"""

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Test certificates live one day: long enough for any run, short enough to be harmless.
VALIDITY: Final = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Pki:
    ca_file: Path  # PEM of the CA that signed the server certificate
    rogue_ca_file: Path  # PEM of a CA that signed nothing we serve
    cert_file: Path  # server certificate (PEM)
    key_file: Path  # server private key (PEM)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _server_cert(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    hosts: tuple[str, ...],
    usages: tuple[x509.ObjectIdentifier, ...] = (ExtendedKeyUsageOID.SERVER_AUTH,),
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class GlusterPeer:
    """One TLS peer in GlusterFS's layout: glusterfs.pem, glusterfs.key, glusterfs.ca."""

    directory: Path

    @property
    def files(self) -> tuple[Path, Path, Path]:
        pem, key, ca = (self.directory / f"glusterfs.{kind}" for kind in ("pem", "key", "ca"))
        return pem, key, ca


def make_gluster_peers(directory: Path, names: tuple[str, ...]) -> dict[str, GlusterPeer]:
    """One CA, and for each name a directory `directory/name` with a certificate (client
    and server use, as GlusterFS peers use one certificate for both) signed by it, its key
    and the CA — the three files glusterfs loads for TLS."""
    ca_key, ca_cert = _ca("glusterfs-provisioner test Gluster CA")
    peers: dict[str, GlusterPeer] = {}
    usages = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
    for name in names:
        peer = GlusterPeer(directory / name)
        peer.directory.mkdir(parents=True)
        key, cert = _server_cert(ca_key, ca_cert, (name,), usages)
        cert_file, key_file, ca_file = peer.files
        _write_cert(cert_file, cert)
        _write_key(key_file, key)
        _write_cert(ca_file, ca_cert)
        peers[name] = peer
    return peers


def make_pki(directory: Path, *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> Pki:
    """Write a CA, a server cert for `hosts` signed by it, and a rogue CA into `directory`."""
    ca_key, ca_cert = _ca("glusterfs-provisioner test CA")
    _, rogue_cert = _ca("glusterfs-provisioner rogue CA")
    key, cert = _server_cert(ca_key, ca_cert, hosts)
    key_file = _write_key(directory / "server-key.pem", key)
    return Pki(
        ca_file=_write_cert(directory / "ca.pem", ca_cert),
        rogue_ca_file=_write_cert(directory / "rogue-ca.pem", rogue_cert),
        cert_file=_write_cert(directory / "server.pem", cert),
        key_file=key_file,
    )
