"""Erasure in an append-only log by crypto-shredding: personal fields are stored encrypted under a key
per data subject; destroying the key erases them everywhere the log goes (projections, replays,
``GET /events``), without rewriting a byte of the log.

- **What is personal**: the catalogue says (``@event(..., personal=(...), subject=...)``): message
  content, session titles and users, post titles, bodies, excerpts and authors.
- **Whose it is** (the subject): ``metadata.subject`` when the sender gives one (best: the CMS's user
  id, the same for a person's posts and chats), else the field the catalogue names (a session's
  ``user_id``, a post's ``author``), else the subject of the stream's first event (a message belongs
  to its session's user, a post update to its post's). An event with personal fields and no subject is
  stored in clear. The log records only ``metadata.subject_ref``, a SHA-256 of the subject, never the
  subject itself.
- **How**: AES-256-GCM (``cryptography``), a fresh 96-bit nonce per field, the event type, field and
  subject ref as associated data (a sealed value cannot be moved to another field or event). A sealed
  field is ``{"$pii": ref, "n": nonce, "c": ciphertext}`` (base64).
- **Reading**: the store unseals while decoding (before upcasting). A destroyed key (or a ciphertext
  that does not authenticate) reads as ``PLACEHOLDER``, so the projections, search documents, replays
  and the API show ``"[erased]"``, deterministically (``chronicle checksum`` agrees before and after a
  replay).
- **Keys** live in a keystore of their own, to be backed up apart from the log: one file per subject
  under ``$DATA_DIR/subject-keys/`` by default, a ``subject_keys`` table when the log is on PostgreSQL
  (every host shares it). A process keeps a key at most ``KEY_TTL`` seconds, so an erasure reaches
  every other process within that.

Logs written before this existed hold personal fields in clear: those events load as they are, and
erasure cannot reach them (docs/erasure.md).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .envelope import NewEvent
from .events import PERSONAL

PLACEHOLDER = "[erased]"
MARK = "$pii"
REF_META = "subject_ref"
_REF_META_KEY = f'"{REF_META}"'  # how the key looks in encoded metadata: a substring test before decoding
KEY_TTL = 5.0  #: seconds a process keeps a subject's key before reading the keystore again


class _NoStream:
    """The type of ``NO_STREAM``."""

    def __repr__(self) -> str:
        return "NO_STREAM"


#: What a stream-subject lookup answers for a stream the log does not have yet (None means the stream's
#: first event names no subject: the two differ when the stream begins in the batch being sealed).
NO_STREAM = _NoStream()
StreamSubject = str | None | _NoStream


def subject_ref(subject: str) -> str:
    """The pseudonymous name of a subject in the log and the keystore."""
    return hashlib.sha256(f"chronicle-subject:{subject}".encode()).hexdigest()[:32]


# -- keystores -----------------------------------------------------------------------------------------


class SubjectKeystore(ABC):
    @abstractmethod
    def get(self, ref: str) -> bytes | None:
        """The subject's key, None when there is none (never created, or destroyed)."""

    @abstractmethod
    def get_or_create(self, ref: str) -> bytes:
        """The subject's key, created if needed (atomically: two writers agree on one key)."""

    @abstractmethod
    def destroy(self, ref: str) -> bool:
        """Destroy the key; True when there was one."""

    def close(self) -> None:
        return None


class FileKeystore(SubjectKeystore):
    """One file per subject (``<ref>.key``, 32 random bytes, mode 0600) in its own directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, ref: str) -> Path:
        if not ref.isalnum():
            raise ValueError(f"bad subject ref {ref!r}")
        return self.directory / f"{ref}.key"

    def get(self, ref: str) -> bytes | None:
        try:
            return self._path(ref).read_bytes()
        except FileNotFoundError:
            return None

    def get_or_create(self, ref: str) -> bytes:
        path = self._path(ref)
        key = AESGCM.generate_key(bit_length=256)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic and fails if another writer won: then theirs is the key
        except FileExistsError:
            key = path.read_bytes()
        finally:
            tmp.unlink(missing_ok=True)
        return key

    def destroy(self, ref: str) -> bool:
        path = self._path(ref)
        try:
            size = path.stat().st_size
            with path.open("r+b") as fh:  # overwrite first: an unlinked file's blocks may linger
                fh.write(secrets.token_bytes(size))
                fh.flush()
                os.fsync(fh.fileno())
            path.unlink()
        except FileNotFoundError:
            return False
        return True


class TableKeystore(SubjectKeystore):
    """A ``subject_keys`` table in a SQL database (the PostgreSQL the log is on)."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import Column, LargeBinary, MetaData, String, Table, create_engine

        self.engine = create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)
        meta = MetaData()
        self.table = Table("subject_keys", meta, Column("ref", String(64), primary_key=True),
                           Column("key", LargeBinary, nullable=False))
        meta.create_all(self.engine)

    def get(self, ref: str) -> bytes | None:
        from sqlalchemy import select

        with self.engine.connect() as conn:
            value = conn.execute(select(self.table.c.key).where(self.table.c.ref == ref)).scalar_one_or_none()
        return bytes(value) if value is not None else None

    def get_or_create(self, ref: str) -> bytes:
        from sqlalchemy.dialects.postgresql import insert

        with self.engine.begin() as conn:
            conn.execute(insert(self.table).values(ref=ref, key=AESGCM.generate_key(bit_length=256))
                         .on_conflict_do_nothing(index_elements=["ref"]))
        key = self.get(ref)
        assert key is not None
        return key

    def destroy(self, ref: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(self.table.delete().where(self.table.c.ref == ref)).rowcount)

    def close(self) -> None:
        self.engine.dispose()


def open_keystore(location: str | None, event_store_url: str, data_dir: Path) -> SubjectKeystore:
    """``location`` (a directory, or a ``postgresql`` URL), else by the log: a table next to a
    PostgreSQL log, files under ``$DATA_DIR/subject-keys`` otherwise."""
    if location:
        return TableKeystore(location) if location.startswith("postgresql") else FileKeystore(Path(location))
    if event_store_url.startswith("postgresql"):
        return TableKeystore(event_store_url)
    return FileKeystore(data_dir / "subject-keys")


# -- sealing and unsealing ------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class Shredder:
    """Seals personal fields on append and unseals them on read, over one keystore."""

    def __init__(self, keystore: SubjectKeystore) -> None:
        self.keystore = keystore
        self._keys: dict[str, tuple[AESGCM | None, float]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.keystore.close()

    def _cipher(self, ref: str, *, create: bool) -> AESGCM | None:
        now = time.monotonic()
        cached = self._keys.get(ref)
        if cached is not None and now - cached[1] < KEY_TTL and (cached[0] is not None or not create):
            return cached[0]
        raw = self.keystore.get_or_create(ref) if create else self.keystore.get(ref)
        cipher = AESGCM(raw) if raw else None
        with self._lock:
            self._keys[ref] = (cipher, now)
        return cipher

    def forget(self, ref: str) -> None:
        with self._lock:
            self._keys.pop(ref, None)

    # -- append --------------------------------------------------------------------------------------

    def seal_batch(self, events: list[NewEvent],
                   stream_refs: Callable[[list[str]], dict[str, StreamSubject]]) -> list[NewEvent]:
        """``seal_all`` of a list, asking ``stream_refs`` once for every stream it needs (one query
        instead of one per stream). A batch without personal events comes back as it is: no copy,
        no lookups (most of a CMS's events carry nothing personal)."""
        personal = [e for e in events if e.type in PERSONAL]
        if not personal:
            return events
        to_look_up = [e.stream for e in personal if self._own_ref(e, PERSONAL[e.type]) is None]
        refs = stream_refs(to_look_up) if to_look_up else {}
        return list(self.seal_all(events, refs.__getitem__))

    def seal_all(self, events: Iterable[NewEvent], stream_ref: Callable[[str], StreamSubject]) -> Iterator[NewEvent]:
        """``events`` with their personal fields sealed, each under its own subject or else under the
        subject of its stream's first event. ``stream_ref(stream)`` is that event's ref when the log
        has it (None: it names no subject), ``NO_STREAM`` when the stream begins in this batch: then
        the batch's first event of the stream is the first. Asked at most once per stream."""
        first_in_batch: dict[str, str | None] = {}
        in_log: dict[str, StreamSubject] = {}
        for e in events:
            model = PERSONAL.get(e.type)
            sealed = e
            if model is not None:
                ref = self._own_ref(e, model)
                if ref is None:
                    found = in_log[e.stream] = in_log[e.stream] if e.stream in in_log else stream_ref(e.stream)
                    ref = first_in_batch.get(e.stream) if isinstance(found, _NoStream) else found
                if ref is not None:
                    sealed = self._seal(e, model, ref)
            if e.stream not in first_in_batch:  # decode the metadata only when it names a subject
                first_in_batch[e.stream] = (sealed.metadata.get(REF_META) if _REF_META_KEY in sealed.metadata_json
                                            else None)
            yield sealed

    @staticmethod
    def _own_ref(e: NewEvent, model: Any) -> str | None:
        """The subject ref an event names itself: ``metadata.subject``, else the catalogue's subject field."""
        # Decoded only when there is something to find: most events carry no metadata at all.
        subject = e.metadata.get("subject") if '"subject"' in e.metadata_json else None
        if isinstance(subject, str) and subject:
            return subject_ref(subject)
        if model.subject_field and isinstance(named := e.data.get(model.subject_field), str) and named:
            return subject_ref(named)
        return None

    def _seal(self, e: NewEvent, model: Any, ref: str) -> NewEvent:
        metadata = dict(e.metadata)
        metadata.pop("subject", None)
        cipher = self._cipher(ref, create=True)
        assert cipher is not None
        data = dict(e.data)
        for field in model.personal:
            value = data.get(field)
            if value is None:
                continue
            nonce = secrets.token_bytes(12)
            aad = f"{e.type}:{field}:{ref}".encode()
            data[field] = {MARK: ref, "n": _b64(nonce),
                           "c": _b64(cipher.encrypt(nonce, orjson.dumps(value), aad))}
        metadata[REF_META] = ref
        return e._replace(data_json=orjson.dumps(data).decode(), metadata_json=orjson.dumps(metadata).decode())

    # -- read ----------------------------------------------------------------------------------------

    def unseal(self, type_: str, data: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
        """``data`` with sealed fields opened, or ``PLACEHOLDER`` where the key is gone. Cheap for
        events with nothing sealed (no ``subject_ref`` in their metadata)."""
        ref = metadata.get(REF_META)
        if ref is None:
            return data
        out = data
        for field, value in data.items():
            if value.__class__ is dict and MARK in value:
                if out is data:
                    out = dict(data)
                out[field] = self._open(type_, field, value)
        return out

    def _open(self, type_: str, field: str, sealed: dict[str, Any]) -> Any:
        ref = sealed[MARK]
        cipher = self._cipher(ref, create=False)
        if cipher is None:
            return PLACEHOLDER
        try:
            plain = cipher.decrypt(base64.b64decode(sealed["n"]), base64.b64decode(sealed["c"]),
                                   f"{type_}:{field}:{ref}".encode())
        except (InvalidTag, ValueError, KeyError):
            return PLACEHOLDER  # a key re-created after an erasure cannot open what the old one sealed
        return orjson.loads(plain)
