"""Time parsing without lazily imported modules (a `--stub-wasi` component
has no file system at run time, so `time.strptime` and friends would trap):
ISO 8601 timestamps and HTTP `Retry-After` values, in milliseconds."""

_MONTHS = {m: i + 1 for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"))}


def _days_from_civil(y, m, d):
    # Howard Hinnant's days_from_civil: days since 1970-01-01.
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def iso_ms(text):
    """`2026-11-29T19:00:00.123Z` (or `+01:00`, or no fraction) as Unix
    milliseconds; None when it is not such a timestamp."""
    if not isinstance(text, str) or len(text) < 19 or text[4] != "-" or text[10] not in "Tt ":
        return None
    try:
        y, mo, d = int(text[0:4]), int(text[5:7]), int(text[8:10])
        h, mi, s = int(text[11:13]), int(text[14:16]), int(text[17:19])
        rest = text[19:]
        ms = 0
        if rest.startswith("."):
            i = 1
            while i < len(rest) and rest[i].isdigit():
                i += 1
            ms = int((rest[1:i] + "000")[:3])
            rest = rest[i:]
        offset = 0
        if rest in ("Z", "z", ""):
            pass
        elif rest[0] in "+-" and len(rest) == 6 and rest[3] == ":":
            offset = (int(rest[1:3]) * 60 + int(rest[4:6])) * (1 if rest[0] == "+" else -1)
        else:
            return None
    except ValueError:
        return None
    days = _days_from_civil(y, mo, d)
    return ((days * 86400 + h * 3600 + mi * 60 + s - offset * 60) * 1000) + ms


def retry_after_ms(value, now_ms):
    """An HTTP `Retry-After` (RFC 9110 §10.2.3: delay-seconds or an
    IMF-fixdate like `Sun, 29 Nov 2026 19:00:00 GMT`) as milliseconds from
    `now_ms` (never negative); None when absent or unreadable."""
    if value is None:
        return None
    v = value.strip()
    if v.isdigit():
        return int(v) * 1000
    parts = v.replace(",", " ").split()
    if len(parts) != 6 or parts[5] != "GMT" or parts[2] not in _MONTHS:
        return None
    try:
        h, mi, s = (int(x) for x in parts[4].split(":"))
        days = _days_from_civil(int(parts[3]), _MONTHS[parts[2]], int(parts[1]))
    except ValueError:
        return None
    return max(0, (days * 86400 + h * 3600 + mi * 60 + s) * 1000 - now_ms)
