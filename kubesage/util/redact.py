"""Credentials out of URIs: one place that knows every form a tracking or data URI can carry them in.

Forms recognised:
- user information: `https://user:password@host`, and a bare token `https://TOKEN@host`
  (GitHub-, Databricks- and proxy-style);
- query parameters that carry a secret: `?token=`, `access_token`, `sig` (Azure SAS),
  `X-Amz-Signature`/`X-Amz-Credential`/`X-Amz-Security-Token` (S3 presigned URLs),
  `X-Goog-Signature`/`X-Goog-Credential` (GCS signed URLs), `password`, `secret`, `api_key`/`apikey`,
  `key`, `code`, `auth`, and any name containing password, passwd, secret, token, signature,
  credential, api_key/apikey;
- in free text also: `NAME=value` and `NAME: value` with such a name (an environment dump such as
  `MLFLOW_TRACKING_PASSWORD=...`, `DATABRICKS_TOKEN=...`, a header `X-Goog-Signature: ...`),
  `Authorization: Bearer|Basic ...` and a bare `Bearer ...`, and JSON or Python-repr string members
  with such a name (`"password": "..."`).

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
        "x-goog-signature",
        "x-goog-credential",
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
# Any name containing one of these (compared lower-cased) is a secret's name too: environment
# variables (MLFLOW_TRACKING_PASSWORD, DATABRICKS_TOKEN, AWS_SECRET_ACCESS_KEY), headers, JSON keys.
SECRET_NAME_PARTS = ("password", "passwd", "secret", "token", "signature", "credential", "api_key", "apikey", "api-key")
_NAME = r"[A-Za-z0-9_.\-]*"
_PART_NAME = _NAME + "(?:" + "|".join(map(re.escape, SECRET_NAME_PARTS)) + ")" + _NAME
_EXACT_NAME = "|".join(sorted(map(re.escape, SECRET_QUERY_NAMES), key=len, reverse=True))
_SECRET_NAME = f"(?:{_EXACT_NAME}|{_PART_NAME})"
# A URI inside free text: scheme://, then anything up to whitespace, a quote or a closing bracket.
_URI_IN_TEXT = re.compile(r"""[A-Za-z][A-Za-z0-9+.\-]*://[^\s'"<>`)\]]+""")
# `"name": "value"` (JSON) or `'name': 'value'` (a Python repr) with a secret name.
_SECRET_MEMBER_IN_TEXT = re.compile(
    r"""(?P<q>["'])(?P<name>""" + _SECRET_NAME + r""")(?P=q)(?P<sep>\s*:\s*)(?P<v>["'])(?:\\.|(?!(?P=v)).)*(?P=v)""",
    re.IGNORECASE,
)
# `Authorization: Bearer TOKEN` (any scheme) and a bare `Bearer TOKEN`: the scheme stays, the rest goes.
# A value stops at a backslash (redacting JSON text must not eat the escape before a closing quote)
# and a `$NAME` placeholder is no secret (the KFP runner's hints say `Bearer $TOKEN`). Only known
# schemes count as one, so in `Authorization: SECRET more` the secret is the value, not a scheme.
_AUTHORIZATION_IN_TEXT = re.compile(
    r"(?P<name>(?<![\w-])(?:proxy-)?authorization\s*[:=]\s*)(?P<scheme>(?:basic|bearer|digest|negotiate|ntlm|token|aws4-hmac-sha256)\s+)?+(?!\$)[^\s'\",;\\]+",
    re.IGNORECASE,
)
_BEARER_IN_TEXT = re.compile(r"(?<![\w-])(?P<scheme>bearer|basic)\s+(?!\*\*\*)[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)
# `name=value` outside a URI (a query string quoted alone, an environment dump) with a secret name.
_SECRET_PAIR_IN_TEXT = re.compile(
    r"(?<![\w.-])(" + _SECRET_NAME + r")(=)(?!\*\*\*|[A-Za-z0-9-]+\s+\*\*\*|\$)([^\s&,;'\"<>)\]\\]+)",
    re.IGNORECASE,
)
# `name: value` (a header line, YAML): only the names that contain a secret word, since short exact
# names (`code: 2`, `key: x`) are everyday words in error messages.
_SECRET_HEADER_IN_TEXT = re.compile(
    r"(?<![\w.-])(" + _PART_NAME + r")(\s*:\s*)(?!\*\*\*|[A-Za-z0-9-]+\s+\*\*\*)([^\s&,;'\"<>)\]]+)",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    """True if a query parameter, variable, header or JSON key of this name holds a secret."""
    lowered = name.lower()
    return lowered in SECRET_QUERY_NAMES or any(part in lowered for part in SECRET_NAME_PARTS)


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
        if is_secret_name(name):
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
        if any(is_secret_name(name) for name, _ in pairs):
            query = urlencode([(name, MASK if is_secret_name(name) else value) for name, value in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return uri
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """`text` with every credential form above masked: URIs through `redact_uri`, then the rest."""
    if "://" in text:
        text = _URI_IN_TEXT.sub(lambda match: redact_uri(match.group(0)), text)
    text = _SECRET_MEMBER_IN_TEXT.sub(lambda m: f"{m['q']}{m['name']}{m['q']}{m['sep']}{m['v']}{MASK}{m['v']}", text)
    text = _AUTHORIZATION_IN_TEXT.sub(lambda m: f"{m['name']}{m['scheme'] or ''}{MASK}", text)
    text = _BEARER_IN_TEXT.sub(lambda m: f"{m['scheme']} {MASK}", text)
    text = _SECRET_PAIR_IN_TEXT.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    return _SECRET_HEADER_IN_TEXT.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


def _mask_userinfo_roughly(uri: str) -> str:
    """For URIs urlsplit refuses (a bad port, a broken IPv6 host): drop anything before the last @."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    authority, slash, tail = rest.partition("/")
    if "@" in authority:
        authority = MASK + "@" + authority.rsplit("@", 1)[1]
    return f"{scheme}://{authority}{slash}{tail}"
