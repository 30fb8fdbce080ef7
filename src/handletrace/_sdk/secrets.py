"""Which of the SDK's settings are secrets, and reading them from live SDK objects.

The SDK keeps every setting of a config, recognizer, synthesizer or dialog connector in a
property bag (a ``PropertyCollection``, each with a ``property_bag`` handle of its own),
secrets included: the subscription key and the authorization token of ``SpeechConfig``,
``BotFrameworkConfig`` and ``CustomCommandsConfig`` (positional or not, whatever the class
was imported as) and the proxy password. A recognizer made from a config gets a copy.
A report masks those exact values wherever they appear (``_core/redaction.py``). They are
read when a report is built, from the SDK objects its records name (no heap scan: the
records already know their owners), and never kept or written.
"""

from __future__ import annotations

import sys
from typing import Any, Container, Dict, FrozenSet, Iterable, List, Set

from .._core.registry import HandleRecord
from .._core.state import TRACKER
from .modules import SDK_MODULE

__all__ = ["SECRET_PROPERTIES", "sdk_secrets"]

#: The ``PropertyId`` members whose values are secrets, by name. All are in SDK 1.41.1 and
#: later (the dialog configs store their key and token under the same two ids as
#: ``SpeechConfig``); a name an SDK version lacks is skipped.
SECRET_PROPERTIES = (
    "SpeechServiceConnection_Key",
    "SpeechServiceAuthorization_Token",
    "SpeechServiceConnection_ProxyPassword",
    # Keys that decrypt embedded (on-device) recognition and synthesis models.
    "SpeechServiceConnection_RecoModelKey",
    "SpeechServiceConnection_SynthModelKey",
)


def sdk_secrets(records: Iterable[HandleRecord], *, skip: Container[int] = ()) -> FrozenSet[str]:
    """The secret settings (``SECRET_PROPERTIES``) of the live SDK objects that own
    ``records``' handles, and of the property collections they hold; records whose sequence
    number is in ``skip`` (their release is in flight) are not read. Never raises: an object
    whose properties cannot be read gives none."""
    sdk = sys.modules.get(SDK_MODULE)
    collection_type = getattr(sdk, "PropertyCollection", None)
    property_id = getattr(sdk, "PropertyId", None)
    if not isinstance(collection_type, type) or property_id is None:
        return frozenset()  # the SDK was never imported: no SDK object holds a secret
    ids = [getattr(property_id, name, None) for name in SECRET_PROPERTIES]
    secret_ids = [pid for pid in ids if pid is not None]
    collections: Dict[int, Any] = {}
    for record in records:
        if record.seq in skip:
            continue
        owner = record.owner_ref()
        if owner is None or _holds_no_credentials(owner):
            continue
        if record.parent is not None and _holds_no_credentials(record.parent_ref()):
            continue  # an audio config's property collection
        try:
            for collection in _collections_of(owner, collection_type):
                collections.setdefault(id(collection), collection)
        except Exception as exc:  # never break a report; counted like the diagnosis's faults
            TRACKER.registry.count_error("secrets", exc)
    found: Set[str] = set()
    for collection in collections.values():
        found.update(_read(collection, secret_ids))
    return frozenset(found)


#: The SDK module of the audio classes (configs, streams, results' audio data): the SDK
#: gives them no credentials, and in a service they are the most numerous owners (reading
#: their property collections was 15 % of a report of 100,000 handles).
_AUDIO_MODULE = f"{SDK_MODULE}.audio"


def _holds_no_credentials(obj: Any) -> bool:
    try:
        module = type.__getattribute__(type(obj), "__module__")  # past a metaclass's hooks
    except Exception:
        return False
    return module == _AUDIO_MODULE


def _collections_of(owner: Any, collection_type: type) -> List[Any]:
    """``owner`` if it is a property collection, else the ones among its attributes.

    Read without the owner's own attribute machinery (``type()``, the instance dict as
    ``object`` gives it): a report must not run a user subclass's ``__getattribute__`` or a
    proxy's ``__class__``."""
    if issubclass(type(owner), collection_type):
        return [owner]
    try:
        namespace = object.__getattribute__(owner, "__dict__")
    except AttributeError:  # no instance dict (a future's owner may be anything)
        return []
    if not isinstance(namespace, dict):
        return []
    return [v for v in list(namespace.values()) if issubclass(type(v), collection_type)]


def _read(collection: Any, secret_ids: Iterable[Any]) -> List[str]:
    values = []
    for pid in secret_ids:
        try:
            value = collection.get_property(pid)
        except Exception:  # a handle released by dispose(): nothing to read
            continue
        if isinstance(value, str) and value:
            values.append(value)
    return values
