"""Content credentials: signing kit PNGs with C2PA, reading and validating them.

The certificate chain is made here, at run time, with the `cryptography` package: an ES256 CA
and a leaf certificate with the extensions C2PA asks for. It is never written to the repository.
"""

import datetime
import os
import sys

import numpy as np
import pytest
from fifo import bounded
from PIL import Image

import kit
from kit import credentials
from kit.errors import KitError
from kit.provenance import xmp
from kit.provenance.artwork import Artwork
from kit.provenance.record import Record


def _art(kind="generate", color=(200, 120, 40)):
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[:] = color
    pixels[8:24, 8:24] = (20, 40, 200)
    record = Record(kind=kind, prompt="a portrait of an elder", seed=3, preset="tiny", model="kit-tiny")
    if kind == "restore":  # as every restoration's record does, it names its source (here the dark original)
        record.restore = {"mask_area": 0.25, "source_sha256": "ab" * 32}
    return Artwork(Image.fromarray(pixels), record)


# ---------------------------------------------------------------- always run (no c2pa needed)


def test_manifest_for_a_new_image_says_trained_algorithmic_media():
    definition = credentials.manifest(_art().record, title="a.png")
    (action,) = definition["assertions"][0]["data"]["actions"]
    assert action["action"] == "c2pa.created"
    assert action["digitalSourceType"] == "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def test_manifest_for_a_restoration_is_an_edit_of_a_parent():
    definition = credentials.manifest(_art("restore").record, title="r.png", edited=True)
    actions = definition["assertions"][0]["data"]["actions"]
    assert [a["action"] for a in actions] == ["c2pa.opened", "c2pa.edited"]
    assert actions[1]["digitalSourceType"].endswith("compositeWithTrainedAlgorithmicMedia")
    assert "25.0%" in actions[1]["description"]


def test_unsigned_png_has_no_manifest(tmp_path):
    path = _art().save(tmp_path)
    assert credentials.has_manifest(path) is False
    assert credentials.status(path) is None


def test_missing_c2pa_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "c2pa", None)  # import c2pa now raises ImportError
    assert credentials.available() is False
    path = _art().save(tmp_path)
    with pytest.raises(KitError, match="pip install"):
        credentials.sign(path, "-----BEGIN CERTIFICATE-----", "-----BEGIN PRIVATE KEY-----")
    with pytest.raises(KitError, match="pip install"):
        credentials.read(path)


# ---------------------------------------------------------------- signing (needs c2pa)


def _missing() -> str:
    if not credentials.available():
        return "c2pa-python is not installed (pip install 'kit-portraits[c2pa]')"
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return "the test certificates need the cryptography package (pip install cryptography)"
    return ""


needs_c2pa = pytest.mark.skipif(bool(_missing()), reason=_missing() or "ready")


@pytest.fixture(scope="module")
def chain():
    """(cert chain PEM, private key PEM, CA PEM): a throwaway ES256 CA and signing certificate."""
    return make_chain()


def make_chain():
    """The `chain` fixture's value (test_authorship signs with one too)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common):
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kit tests"),
            ]
        )

    def usage(**on):
        flags = dict(
            digital_signature=False,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )
        return x509.KeyUsage(**{**flags, **on})

    def certificate(subject, issuer, public_key, signing_key):
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        certificate(name("kit test CA"), name("kit test CA"), ca_key.public_key(), ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        certificate(name("kit test signer"), ca.subject, key.public_key(), ca_key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return (leaf.public_bytes(pem) + ca.public_bytes(pem)).decode(), key_pem.decode(), ca.public_bytes(pem).decode()


@needs_c2pa
def test_signed_image_validates_and_keeps_its_record(tmp_path, chain):
    cert_chain, key, ca = chain
    art = _art()
    path = art.save(tmp_path)
    assert credentials.sign(path, cert_chain, key) == path

    info = credentials.read(path)
    assert info["valid"] is True and info["trusted"] is False  # self-made CA: valid, not trusted
    assert info["actions"] == ["c2pa.created"]
    assert info["digital_source_types"] == [credentials.TRAINED]
    assert info["ai_generated"] is True
    assert info["signer"] == "kit test signer"
    assert credentials.read(path, trust_anchors=ca)["state"] == "Trusted"
    assert credentials.status(path)["valid"] is True

    loaded = kit.load(path)  # the kit's own metadata survives signing
    assert loaded.verified is True
    assert loaded.record.to_dict() == art.record.to_dict()
    with Image.open(path) as png:  # the XMP written at save time is inside the signed (still valid) file
        assert png.text[xmp.KEYWORD] == xmp.packet(art.record)


@needs_c2pa
def test_pem_files_and_out_path(tmp_path, chain):
    cert_chain, key, _ = chain
    (tmp_path / "chain.pem").write_text(cert_chain)
    (tmp_path / "key.pem").write_text(key)
    path = _art().save(tmp_path / "gallery")
    target = credentials.sign(path, tmp_path / "chain.pem", str(tmp_path / "key.pem"), out=tmp_path / "signed.png")
    assert credentials.read(target)["valid"] is True
    assert credentials.read(path) is None  # the source file was left alone


@needs_c2pa
def test_tampered_pixels_fail_validation(tmp_path, chain):
    cert_chain, key, _ = chain
    path = credentials.sign(_art().save(tmp_path), cert_chain, key)
    data = bytearray(path.read_bytes())
    data[data.index(b"IDAT") + 12] ^= 0xFF
    path.write_bytes(bytes(data))
    info = credentials.read(path)
    assert info["valid"] is False
    assert any("mismatch" in code for code in info["failures"])


@needs_c2pa
def test_restoration_is_signed_as_an_edit_with_its_original(tmp_path, chain):
    cert_chain, key, _ = chain
    original = _art(color=(10, 10, 10))
    restored = _art("restore")
    path = restored.save(tmp_path)
    with pytest.raises(KitError, match="original"):
        credentials.sign(path, cert_chain, key)
    credentials.sign(path, cert_chain, key, original=original.image)
    info = credentials.read(path)
    assert info["valid"] is True
    assert info["actions"] == ["c2pa.opened", "c2pa.edited"]
    assert info["digital_source_types"] == [credentials.COMPOSITE]
    assert info["ingredients"] == [{"title": "original.png", "relationship": "parentOf"}]


@needs_c2pa
def test_bad_signing_input(tmp_path, chain):
    cert_chain, key, _ = chain
    path = _art().save(tmp_path)
    with pytest.raises(KitError, match="cert_chain"):
        credentials.sign(path, "not a pem", key)
    with pytest.raises(KitError, match="alg"):
        credentials.sign(path, cert_chain, key, alg="md5")
    foreign = tmp_path / "foreign.png"
    Image.new("RGB", (16, 16)).save(foreign)
    with pytest.raises(KitError, match="no kit record"):
        credentials.sign(foreign, cert_chain, key)
    credentials.sign(path, cert_chain, key)
    with pytest.raises(KitError, match="already carries"):
        credentials.sign(path, cert_chain, key)


# ---------------------------------------------------------------- broken input


def test_status_of_a_fifo_is_none_and_never_waits(tmp_path):
    fifo = tmp_path / "signed.png"
    os.mkfifo(fifo)
    assert bounded(lambda: credentials.status(fifo), fifo) is None
    with pytest.raises(KitError, match="FIFO"):
        bounded(lambda: credentials.has_manifest(fifo), fifo)


@needs_c2pa
@pytest.mark.parametrize(
    "source", ["/" + "x" * 5000 + ".png", "/tmp/a\x00b.png", "/" + "/".join(["e" * 200] * 40) + ".png"]
)
def test_a_restyle_whose_record_names_an_unusable_path_asks_for_the_original(tmp_path, chain, source):
    cert_chain, key, _ = chain
    art = _art("restyle")
    art.record.restyle = {"source_path": source, "source_sha256": "0" * 64}
    path = art.save(tmp_path)
    with pytest.raises(KitError, match="pass original="):
        credentials.sign(path, cert_chain, key)
    with pytest.raises(KitError, match="cert_chain"):
        credentials.sign(path, "c" * 5000, key)  # neither PEM text nor a path a file system takes
