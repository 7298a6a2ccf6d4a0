"""The tiny script language the stand-in's containers "run" (both nodes).

A container's ``command`` + ``args`` are read as ``sh -c <script>`` (or the argv joined) and
interpreted: ``echo``, ``printenv NAME`` (exit 1 when unset), ``cat PATH`` (a mounted file; exit 1 when absent), ``sleep N`` (simulated seconds), ``exit N``, ``fail-on-index 1,3`` (fails
when ``JOB_COMPLETION_INDEX`` is listed), ``fail-once`` (fails on the first attempt) and
``upload-blob URL_FILE NAME TEXT...`` (see :func:`upload_blob`).
``$VAR``/``${VAR}`` expand from the container's environment as a shell would, at run time.
Nothing here is platform behaviour: it only gives pods something observable to do.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit, urlunsplit

_VAR = re.compile(r"\$(\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def shell_words(text: str, env: dict[str, str]) -> list[str]:
    """Split like sh: quotes group, ``$VAR``/``${VAR}`` expand outside single quotes."""
    words: list[str] = []
    cur: list[str] = []
    has_word = False
    i, quote = 0, ""
    while i < len(text):
        ch = text[i]
        if quote == "'":
            if ch == "'":
                quote = ""
            else:
                cur.append(ch)
            i += 1
            continue
        if ch == "\\" and i + 1 < len(text) and quote != "'":
            cur.append(text[i + 1])
            has_word = True
            i += 2
            continue
        if ch in "'\"":
            if quote == ch:
                quote = ""
            elif not quote:
                quote = ch
            else:
                cur.append(ch)
            has_word = True
            i += 1
            continue
        if ch == "$":
            m = _VAR.match(text, i)
            if m:
                cur.append(env.get(m.group(2) or m.group(3) or "", ""))
                has_word = has_word or bool(quote)  # unquoted empty expansions vanish, as in sh
                i = m.end()
                continue
        if ch.isspace() and not quote:
            if has_word or any(cur):
                words.append("".join(cur))
            cur, has_word = [], False
            i += 1
            continue
        cur.append(ch)
        has_word = True
        i += 1
    if has_word or any(cur):
        words.append("".join(cur))
    return words


def split_statements(script: str) -> list[str]:
    out: list[str] = []
    cur: list[str] = []
    quote = ""
    i = 0
    while i < len(script):
        ch = script[i]
        if quote:
            if ch == quote:
                quote = ""
            cur.append(ch)
        elif ch in "'\"":
            quote = ch
            cur.append(ch)
        elif ch in ";\n" or script.startswith("&&", i):
            out.append("".join(cur).strip())
            cur = []
            if ch == "&":
                i += 1
        else:
            cur.append(ch)
        i += 1
    out.append("".join(cur).strip())
    return [s for s in out if s and not s.startswith("#")]


def plan_container(
    argv: list[str],
    env: dict[str, str],
    *,
    pod_name: str,
    first_attempt: bool,
    time_scale: float,
    files: dict[str, str] | None = None,
) -> tuple[list[tuple[float, str]], float, int]:
    """Run the tiny script language: returns (log lines with offsets, end offset, exit code)."""
    if not argv:
        return [(0.0, f"hello from {pod_name}")], 0.0, 0
    if len(argv) >= 3 and argv[0] in ("sh", "/bin/sh", "bash", "/bin/bash") and argv[1] == "-c":
        script = argv[2]
    else:
        script = " ".join(argv)
    clock = 0.0
    lines: list[tuple[float, str]] = []
    for stmt in split_statements(script):
        words = shell_words(stmt, env)
        if not words:
            continue
        cmd, rest = words[0], words[1:]
        if cmd == "echo":
            if rest[:1] == ["-n"]:
                rest = rest[1:]
            lines.append((clock, " ".join(rest)))
        elif cmd == "printenv":
            # busybox printenv: prints the value; exit 1 when the variable is not set
            if rest and rest[0] not in env:
                return lines, clock, 1
            if rest:
                lines.append((clock, env[rest[0]]))
        elif cmd == "cat":
            for path in rest:
                if path not in (files or {}):
                    lines.append((clock, f"cat: can't open '{path}': No such file or directory"))
                    return lines, clock, 1
                lines.extend((clock, line) for line in (files or {})[path].splitlines())
        elif cmd == "sleep":
            try:
                clock += max(0.0, float(rest[0])) * time_scale
            except (IndexError, ValueError):
                pass
        elif cmd == "exit":
            try:
                code = int(rest[0]) if rest else 0
            except ValueError:
                code = 2
            return lines, clock, code & 0xFF
        elif cmd == "fail-on-index":
            wanted = {p.strip() for w in rest for p in w.split(",") if p.strip()}
            if env.get("JOB_COMPLETION_INDEX") in wanted:
                lines.append((clock, f"failing on index {env.get('JOB_COMPLETION_INDEX')}"))
                return lines, clock, 1
        elif cmd == "fail-once" and first_attempt:
            lines.append((clock, "failing once"))
            return lines, clock, 1
        elif cmd == "upload-blob":
            error = upload_blob(rest, files or {})
            if error:
                lines.append((clock, error))
                return lines, clock, 1
    return lines, clock, 0


def upload_blob(words: list[str], files: dict[str, str]) -> str | None:
    """``upload-blob URL_FILE NAME TEXT...``: what a workload does with its output SAS. The container
    URL with SAS is read from the mounted file ``URL_FILE`` (the per-request Secret), and the rest
    of the line, as ``echo`` prints it, is written as the block blob ``NAME`` in that container
    (Put Blob over HTTPS, authorised by the SAS alone, as ``azcopy`` or an SDK would). Done when the
    script runs, at the container's start: the blob is there before the container exits. Returns
    the error line to log (exit 1), never the URL: it is a credential."""
    if len(words) < 2:
        return "upload-blob: usage: upload-blob URL_FILE NAME TEXT..."
    path, name, text = words[0], words[1], " ".join(words[2:]) + "\n"
    if path not in files:
        return f"upload-blob: can't open '{path}': No such file or directory"
    from azure.core.exceptions import AzureError, HttpResponseError
    from azure.storage.blob import BlobClient

    from devtools.tls import shared_ca

    url = urlsplit(files[path].strip())
    blob_url = urlunsplit(url._replace(path=url.path.rstrip("/") + "/" + quote(name)))
    try:
        # The stand-in's services present certificates of the test CA; a real container trusts public CAs.
        with BlobClient.from_blob_url(blob_url, connection_verify=str(shared_ca().ca_path)) as blob:
            blob.upload_blob(text.encode(), overwrite=True)
    except HttpResponseError as err:
        return f"upload-blob: {name}: HTTP {err.status_code} {err.error_code or ''}".rstrip()
    except AzureError as err:
        return f"upload-blob: {name}: {type(err).__name__}"
    return None
