"""
A private OpenLDAP server for tests: Debian's C{slapd} on its own
C{slapd.conf}, an MDB database in a temporary directory, loopback ports
(C{ldap://} and, with certificates, C{ldaps://}), started by the test and
killed and removed after it.  Entries are loaded with C{ldapadd}, as a
sysadmin would.  slapd runs in the foreground with C{-d stats}, so its log
(L{Slapd.log}) shows every search filter as the server received it.

The directory (C{dc=example,dc=org}) holds a reader account that may read
passwords (C{cn=reader}, password L{READER_PASSWORD}), people under
C{ou=people} (posixAccount + inetOrgPerson + a small test schema with a
mail location and quotas), and L{ldif_user} writes more of them.

A test CA (L{TestCA}) signs the server certificate, as a site's own CA
would; clients trust the CA's file, not the server's certificate.
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SLAPD = "/usr/sbin/slapd"
LDAPADD = "/usr/bin/ldapadd"
SUFFIX = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "admin secret"
READER_DN = f"cn=reader,{SUFFIX}"
READER_PASSWORD = "reader secret"
PEOPLE = f"ou=people,{SUFFIX}"

#: A schema of our own: where a user's mail is and how much of it there
#: may be (sites keep such attributes in a local schema too).
_SCHEMA = """
attributetype ( 1.3.6.1.4.1.99999.1.1 NAME 'mailLocation'
    EQUALITY caseExactIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.99999.1.2 NAME 'mailQuota'
    EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.99999.1.3 NAME 'mailQuotaMessages'
    EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.99999.2.1 NAME 'imapdUser' SUP top AUXILIARY
    MAY ( mailLocation $ mailQuota $ mailQuotaMessages ) )
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TestCA:
    """A certificate authority of the test's own, and server certificates it signs."""

    __test__ = False

    def __init__(self, directory: Path, name: str = "imapd test CA") -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._x509, self._hashes, self._ec = x509, hashes, ec
        self._serialization, self._oid = serialization, NameOID
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(hours=1))
                     .not_valid_after(now + datetime.timedelta(days=2))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                                  False, False), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.cert_file = directory / "ca.pem"
        self.cert_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, hosts=("localhost",), addresses=("127.0.0.1",)):
        """C{(cert_file, key_file)} of a server certificate for C{hosts} and C{addresses}."""
        import ipaddress

        x509, ser = self._x509, self._serialization
        key = self._ec.generate_private_key(self._ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        alt = [x509.DNSName(h) for h in hosts]
        alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(self._oid.COMMON_NAME, hosts[0])]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName(alt), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(self.key, self._hashes.SHA256()))
        cert_file, key_file = self.directory / f"{name}.pem", self.directory / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(ser.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8,
                                               ser.NoEncryption()))
        os.chmod(key_file, 0o600)
        return cert_file, key_file


@dataclass
class User:
    name: str
    password: str
    dn: str


def ldif_user(name: str, stored_password: str, uid_number: int, home: str = "",
              employee_type: str = "mail", location: str = "", quota: str = "",
              quota_messages: int = 0, ou: str = "people") -> str:
    """An LDIF entry for a person (C{stored_password}: the userPassword value)."""
    lines = [f"dn: uid={name},ou={ou},{SUFFIX}",
             "objectClass: inetOrgPerson", "objectClass: posixAccount",
             "objectClass: imapdUser",
             f"uid: {name}", f"cn: {name}", f"sn: {name}",
             f"uidNumber: {uid_number}", "gidNumber: 5000",
             f"homeDirectory: {home or '/nonexistent/' + name}",
             f"employeeType: {employee_type}"]
    if stored_password:
        lines.append(f"userPassword: {stored_password}")
    if location:
        lines.append(f"mailLocation: {location}")
    if quota:
        lines.append(f"mailQuota: {quota}")
    if quota_messages:
        lines.append(f"mailQuotaMessages: {quota_messages}")
    return "\n".join(lines) + "\n"


class Slapd:
    """
    One private slapd (see the module docstring).

    @param tls: C{(cert_file, key_file)} to serve C{ldaps://} and StartTLS.
    """

    def __init__(self, root: Path, tls=None) -> None:
        self.root = root
        self.tls = tls
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.proc = None
        self.log_path = root / "slapd.log"
        root.mkdir(parents=True, exist_ok=True)
        (root / "db").mkdir(exist_ok=True)
        (root / "local.schema").write_text(_SCHEMA)
        self.conf = root / "slapd.conf"
        self.conf.write_text(self._conf())

    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def tls_uri(self) -> str:
        return f"ldaps://localhost:{self.tls_port}"

    def _conf(self) -> str:
        tls = ""
        if self.tls:
            tls = f"TLSCertificateFile {self.tls[0]}\nTLSCertificateKeyFile {self.tls[1]}\n"
        return f"""
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
include {self.root}/local.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {self.root}/slapd.pid
argsfile {self.root}/slapd.args
{tls}
database mdb
maxsize 16777216
suffix "{SUFFIX}"
rootdn "{ADMIN_DN}"
rootpw "{ADMIN_PASSWORD}"
directory {self.root}/db
index uid eq
access to attrs=userPassword
    by dn.exact="{READER_DN}" read
    by anonymous auth
    by * none
access to * by * read
"""

    def start(self) -> "Slapd":
        """Start slapd (again, after L{stop}: the same ports and database)."""
        urls = self.uri + "/"
        if self.tls:
            urls += f" ldaps://127.0.0.1:{self.tls_port}/"
        log = open(self.log_path, "ab")
        # -d stats: stay in the foreground and log each operation.
        self.proc = subprocess.Popen([SLAPD, "-f", str(self.conf), "-h", urls, "-d", "stats"],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"slapd ended at start: {self.log()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("slapd did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # if paused
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: slapd keeps its port but answers nothing (a hung server)."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        # The signal takes effect a moment later: wait until it has.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "T":
                    return
            time.sleep(0.01)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def add(self, ldif: str) -> None:
        """Load entries with C{ldapadd}, bound as the rootdn."""
        done = subprocess.run([LDAPADD, "-x", "-H", self.uri, "-D", ADMIN_DN,
                               "-w", ADMIN_PASSWORD], input=ldif.encode(),
                              capture_output=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"ldapadd failed: {done.stderr.decode(errors='replace')}")

    def load_base(self) -> None:
        """The suffix, the reader account and C{ou=people}, C{ou=other}."""
        from imapd.auth.schemes import hash_password

        self.add(f"""dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: {READER_DN}
objectClass: simpleSecurityObject
objectClass: organizationalRole
cn: reader
userPassword: {hash_password(READER_PASSWORD, 'SSHA')}

dn: {PEOPLE}
objectClass: organizationalUnit
ou: people

dn: ou=other,{SUFFIX}
objectClass: organizationalUnit
ou: other
""")


def needs_slapd():
    """Fail (not skip) clearly when the packages the LDAP tests need are missing."""
    missing = [p for p in (SLAPD, LDAPADD) if not os.path.exists(p)]
    if missing:
        pytest.fail(f"LDAP tests need slapd and ldap-utils (missing {missing}); "
                    "bash .ci/run installs them")


@pytest.fixture
def slapd(tmp_path):
    """A started private slapd with the base entries; stopped and removed after."""
    needs_slapd()
    server = Slapd(tmp_path / "slapd")
    server.start()
    server.load_base()
    yield server
    server.stop()
    shutil.rmtree(server.root, ignore_errors=True)
