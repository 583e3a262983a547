"""Credentials out of URIs: one place that knows every form a tracking or data URI can carry them in.

Forms recognised:
- user information: `https://user:password@host`, and a bare token `https://TOKEN@host`
  (GitHub-, Databricks- and proxy-style);
- query parameters that carry a secret: `?token=`, `access_token`, `sig` (Azure SAS),
  `X-Amz-Signature`/`X-Amz-Credential`/`X-Amz-Security-Token` (S3 presigned URLs), `password`,
  `secret`, `api_key`/`apikey`, `key`, `code`, `auth`.

`redact_uri` rewrites one URI; `redact_text` rewrites every URI inside a free text (an error
message, a failure tag, JSON output). `uri_credentials` names the forms a URI carries, for the
places that must refuse rather than hide them (a pipeline parameter is readable by anyone who may
describe the pipeline).

Hand-written rather than a library: the candidates (e.g. `yarl`, `furl`) parse URIs but do not
know which query names are secrets, and a regex pass over free text is needed anyway.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

# Query parameter names (compared lower-cased) whose values are secrets.
SECRET_QUERY_NAMES = frozenset(
    {
        "token",
        "access_token",
        "id_token",
        "refresh_token",
        "auth",
        "authorization",
        "sig",
        "signature",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "api_key",
        "apikey",
        "key",
        "code",
    }
)
# A URI inside free text: scheme://, then anything up to whitespace, a quote or a closing bracket.
_URI_IN_TEXT = re.compile(r"""[A-Za-z][A-Za-z0-9+.\-]*://[^\s'"<>`)\]]+""")
# `name=value` outside a URI (a query string quoted alone, an environment dump) with a secret name.
_SECRET_PAIR_IN_TEXT = re.compile(
    r"(?<![\w-])("
    + "|".join(sorted(map(re.escape, SECRET_QUERY_NAMES), key=len, reverse=True))
    + r")=([^\s&,;'\"<>)\]]+)",
    re.IGNORECASE,
)


def uri_credentials(uri: str) -> list[str]:
    """The credential forms `uri` carries (empty if none), e.g. ["password in user info", "query 'token'"]."""
    try:
        parts = urlsplit(uri)
        password, username = parts.password, parts.username
    except ValueError:  # unparseable, but user information may still be in it
        return ["user info"] if _mask_userinfo_roughly(uri) != uri else []
    found: list[str] = []
    if password is not None:
        found.append("password in user info")
    elif username:
        found.append("token in user info")
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if name.lower() in SECRET_QUERY_NAMES:
            found.append(f"query '{name}'")
    return found


def redact_uri(uri: str) -> str:
    """`uri` with user information and secret query values replaced by ***; other URIs unchanged."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return _mask_userinfo_roughly(uri)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{host or ''}" + (f":{port}" if port is not None else "")
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name.lower() in SECRET_QUERY_NAMES for name, _ in pairs):
            query = urlencode(
                [(name, MASK if name.lower() in SECRET_QUERY_NAMES else value) for name, value in pairs], safe="*"
            )
    if netloc == parts.netloc and query == parts.query:
        return uri
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Every URI inside `text` passed through `redact_uri`, and secret `name=value` pairs masked."""
    if "://" in text:
        text = _URI_IN_TEXT.sub(lambda match: redact_uri(match.group(0)), text)
    if "=" in text:
        text = _SECRET_PAIR_IN_TEXT.sub(lambda match: f"{match.group(1)}={MASK}", text)
    return text


def _mask_userinfo_roughly(uri: str) -> str:
    """For URIs urlsplit refuses (a bad port, a broken IPv6 host): drop anything before the last @."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    authority, slash, tail = rest.partition("/")
    if "@" in authority:
        authority = MASK + "@" + authority.rsplit("@", 1)[1]
    return f"{scheme}://{authority}{slash}{tail}"
