"""A corpus of hostile agent files, built by hand in a temporary folder.

Each :class:`Case` makes one file (or one path that is not a file) and says what the error must
mention. Classes follow GitHub issue 5: bytes that are not UTF-8, binary junk, control
characters, alias bombs, recursive aliases, deep nesting, paths that are not regular files,
limits, numbers that can only be mistakes, secrets from the environment, model paths, and YAML
oddities. The shipped agents/local.yaml is the base for the cases that need a believable file.
"""

from __future__ import annotations

import gzip
import os
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCAL = (ROOT / "agents/local.yaml").read_text(encoding="utf-8")
SECRET = "vf-secret-7c1d9e0a5b"
ENV = {"VF_SECRET": SECRET, "VF_SECRET_DIR": "/srv/vf-secret-models-4411"}


@dataclass(frozen=True)
class Case:
    group: str
    name: str
    make: Callable[[Path], Path]
    expect: str
    """A piece of text the error must contain."""
    position: tuple[int, int] | None = None
    """The (line, column) the first issue must point at, where it matters."""

    @property
    def id(self) -> str:
        return f"{self.group}/{self.name}"


def agent_text(tmp: Path) -> str:
    """agents/local.yaml made loadable from ``tmp``: its recording and output paths made absolute."""
    text = LOCAL.replace("recordings/capital.wav", str(ROOT / "agents/recordings/capital.wav"))
    return text.replace("${VOICEFLOW_OUTPUT:-../call.wav}", str(tmp / "call.wav"))


def changed(tmp: Path, old: str, new: str) -> str:
    text = agent_text(tmp)
    assert old in text, old
    return text.replace(old, new, 1)


def write(name: str, content: bytes | str | Callable[[Path], bytes | str]) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        data = content(tmp) if callable(content) else content
        path = tmp / f"{name}.yaml"
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return path

    return make


def edit(name: str, old: str, new: str) -> Callable[[Path], Path]:
    return write(name, lambda tmp: changed(tmp, old, new))


def junk(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _fifo_named(tmp: Path, name: str) -> Path:
    os.mkfifo(tmp / name)
    return tmp / name


def _fifo(tmp: Path) -> Path:
    return _fifo_named(tmp, "fifo.yaml")


def _socket(tmp: Path) -> Path:
    sock = socket.socket(socket.AF_UNIX)
    here = os.getcwd()
    os.chdir(tmp)  # an AF_UNIX address is short: bind a relative name
    try:
        sock.bind("socket.yaml")
    finally:
        os.chdir(here)
        sock.close()
    return tmp / "socket.yaml"


def _link(name: str, target: str | Callable[[Path], Path]) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        link = tmp / f"{name}.yaml"
        link.symlink_to(target(tmp) if callable(target) else target)
        return link

    return make


def _loop(tmp: Path) -> Path:
    (tmp / "loop-a.yaml").symlink_to(tmp / "loop-b.yaml")
    (tmp / "loop-b.yaml").symlink_to(tmp / "loop-a.yaml")
    return tmp / "loop-a.yaml"


def _directory(tmp: Path) -> Path:
    (tmp / "dir.yaml").mkdir()
    return tmp / "dir.yaml"


def _unreadable(tmp: Path) -> Path:
    path = tmp / "unreadable.yaml"
    path.write_text("name: [unclosed\n")  # refused either way, also when tests run as root
    path.chmod(0)
    return path


def _sparse(tmp: Path) -> Path:
    path = tmp / "sparse.yaml"
    with open(path, "wb") as handle:
        handle.truncate(10 * 1024**3)  # 10 GiB of holes: only stat may look at it
    return path


def _billion_laughs(mapping: bool) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        refs = ", ".join(f"*l{i - 1}" for _ in range(10))
        body = "{" + ", ".join(f"k{j}: *l{i - 1}" for j in range(10)) + "}" if mapping else f"[{refs}]"
        lines.append(f"l{i}: &l{i} {body}")
    return "\n".join(lines) + "\n"


def _merge_bomb() -> str:
    lines = ["m0: &m0 {a: 1, b: 2, c: 3}"]
    for i in range(1, 12):
        lines.append(f"m{i}: &m{i} {{<<: [{', '.join(f'*m{i - 1}' for _ in range(10))}], x{i}: 1}}")
    return "\n".join(lines) + "\n"


def _after(prepare: Callable[[Path], object], content: Callable[[Path], str]) -> Callable[[Path], str]:
    def both(tmp: Path) -> str:
        prepare(tmp)
        return content(tmp)

    return both


def _model_dir(tmp: Path) -> Path:
    (tmp / "models").mkdir(exist_ok=True)
    return tmp / "models"


def _with_model(name: str, block: str, prepare: Callable[[Path], object] | None = None) -> Callable[[Path], Path]:
    def content(tmp: Path) -> str:
        if prepare:
            prepare(tmp)
        return changed(tmp, "tts:\n  - provider: piper\n    voice: joe\n", f"tts:\n{block}")

    return write(name, content)


def _stt_with(name: str, block: str, prepare: Callable[[Path], object] | None = None) -> Callable[[Path], Path]:
    def content(tmp: Path) -> str:
        if prepare:
            prepare(tmp)
        return changed(tmp, "  - provider: whisper\n    model: base\n", block)

    return write(name, content)


def _llm_path(value: str) -> str:
    return f"  - provider: llama-cpp\n    model_path: {value}\n"


def _deep_block_mapping(levels: int) -> str:
    return "".join(" " * i + f"k{i}:\n" for i in range(levels)) + " " * levels + "v\n"


def corpus() -> list[Case]:
    many_items = "".join("  - 1\n" for _ in range(5000))
    cases = [
        # --- invalid UTF-8 -----------------------------------------------------------------
        Case("utf8", "bad-byte-after-accents", write("u1", "name: héllo\nprompt: {system: ".encode() + b"\xff}\n"),
             "not UTF-8 text: byte 0xff", (2, 18)),
        Case("utf8", "truncated-sequence-at-end", write("u2", b"name: caf" + b"\xc3"), "byte 0xc3", (1, 10)),
        Case("utf8", "latin-1-file", write("u3", "name: agent\ndescription: café\n".encode("latin-1")),
             "not UTF-8", (2, 17)),
        Case("utf8", "overlong-slash", write("u4", b"name: a\xc0\xafb\n"), "byte 0xc0", (1, 8)),
        Case("utf8", "utf-16-with-bom", write("u5", "name: a\n".encode("utf-16")), "UTF-16", (1, 1)),
        Case("utf8", "lone-surrogate-bytes", write("u6", b"name: \xed\xa0\x80\n"), "byte 0xed", (1, 7)),
        # --- binary junk -------------------------------------------------------------------
        Case("binary", "random-4k", write("b1", junk(1, 4096)), ": "),
        Case("binary", "random-64k", write("b2", junk(2, 65536)), ": "),
        Case("binary", "random-ascii-noise", write("b3", bytes(b % 95 + 32 for b in junk(3, 8192))), "invalid YAML"),
        Case("binary", "png-header", write("b4", b"\x89PNG\r\n\x1a\n" + junk(4, 512)), ": "),
        Case("binary", "elf-and-zeros", write("b5", b"\x7fELF\x02\x01\x01" + bytes(4096)), "U+007F"),
        Case("binary", "gzipped-agent", write("b6", lambda tmp: gzip.compress(agent_text(tmp).encode())),
             "not UTF-8"),
        # --- control characters ------------------------------------------------------------
        Case("control", "nul-in-value", write("c1", "name: a\x00b\n"), "U+0000 (NUL)", (1, 8)),
        Case("control", "esc-sequence-in-value", edit("c2", "name: local-assistant", "name: \x1b[2J\x1b[31mred"),
             "U+001B (ESC)"),
        Case("control", "esc-in-key", write("c3", "na\x1bme: a\n"), "U+001B (ESC)", (1, 3)),
        Case("control", "bell-after-accents", write("c4", "description: ééé\x07\n"), "U+0007 (BEL)", (1, 17)),
        Case("control", "del", write("c5", "name: a\x7f\n"), "U+007F (DEL)", (1, 8)),
        Case("control", "c1-csi", write("c6", "name: a\u009b31m\n"), "U+009B", (1, 8)),
        Case("control", "nul-first", write("c7", "\x00" * 100), "U+0000", (1, 1)),
        Case("control", "escaped-controls-in-keys", write("c8", 'name: a\n"x\\e[2J\\ny": 1\n'), "unknown field"),
        Case("control", "bidi-override-in-key", write("c9", "name: a\nab\u202edc: 1\n"), "\\u202e"),
        # --- alias bombs -------------------------------------------------------------------
        Case("bomb", "billion-laughs-lists", write("a1", _billion_laughs(False)), "max_alias_nodes=10000"),
        Case("bomb", "billion-laughs-mappings", write("a2", _billion_laughs(True)), "max_alias_nodes=10000"),
        Case("bomb", "merge-key-bomb", write("a3", _merge_bomb()), "max_alias_nodes=10000"),
        Case("bomb", "bomb-inside-a-real-agent",
             edit("a4", "description: A friendly", "bomb:\n  " + _billion_laughs(False).rstrip().replace("\n", "\n  ")
                  + "\ndescription: A friendly"), "max_alias_nodes=10000"),
        Case("bomb", "alias-chain", write("a5", "a0: &a0 [x, y]\n" + "".join(
            f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, 40))), "max_alias_nodes=10000"),
        # --- recursive aliases and anchors -------------------------------------------------
        Case("recursive", "list-contains-itself", write("r1", "a: &a [1, *a]\n"), "contains it", (1, 11)),
        Case("recursive", "mapping-contains-itself", write("r2", "a: &a {x: 1, y: *a}\n"), "contains it"),
        Case("recursive", "merge-of-itself", write("r3", "a: &a {<<: *a}\n"), "contains it"),
        Case("recursive", "mutual-through-nesting", write("r4", "a: &a {b: &b {c: *a}}\n"), "contains it"),
        Case("recursive", "undefined-alias", write("r5", "name: *nope\n"), "before any &nope", (1, 7)),
        Case("recursive", "duplicate-anchor", write("r6", "a: &x 1\nb: &x 2\n"), "defined twice", (2, 4)),
        Case("recursive", "deep-alias-chain", write("r7", "a0: &a0 [x]\n" + "".join(
            f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 100))), "max_depth=64"),
        # --- nesting ------------------------------------------------------------------------
        Case("nesting", "flow-lists-10000", write("n1", "[" * 10_000 + "]" * 10_000), "max_depth=64"),
        Case("nesting", "flow-lists-unclosed", write("n2", "name: " + "[" * 10_000), "max_depth=64"),
        Case("nesting", "flow-mappings-10000", write("n3", "{a: " * 10_000 + "}" * 10_000), "max_depth=64"),
        Case("nesting", "block-lists-one-line", write("n4", "- " * 10_000 + "x\n"), "max_depth=64"),
        Case("nesting", "block-mappings-1000", write("n5", _deep_block_mapping(1000)), "max_depth=64"),
        Case("nesting", "flow-100-under-libyaml-cap", write("n6", "name: " + "[" * 100 + "]" * 100), "max_depth=64"),
        Case("nesting", "mixed-inside-agent", edit("n7", "description: A friendly", "description: "
             + "[{a: " * 5000 + "\ndescription: A friendly"), "max_depth=64"),
        # --- not a regular file -------------------------------------------------------------
        Case("path", "dev-zero", lambda tmp: Path("/dev/zero"), "character device, not a regular file"),
        Case("path", "symlink-to-dev-zero", _link("zero", "/dev/zero"), "character device"),
        Case("path", "dev-null", lambda tmp: Path("/dev/null"), "character device"),
        Case("path", "fifo", _fifo, "is a FIFO, not a regular file"),
        Case("path", "symlink-to-fifo", _link("to-fifo", _fifo), "is a FIFO"),
        Case("path", "socket", _socket, "is a socket"),
        Case("path", "directory", _directory, "is a directory"),
        Case("path", "symlink-loop", _loop, "too many levels of symbolic links"),
        Case("path", "missing", lambda tmp: tmp / "missing.yaml", "no such file"),
        Case("path", "dangling-symlink", _link("dangling", "/nonexistent/agent.yaml"), "no such file"),
        Case("path", "below-a-file", lambda tmp: Path(write("f", "x: 1\n")(tmp)) / "agent.yaml", "not a directory"),
        Case("path", "unreadable", _unreadable, ": "),
        Case("path", "empty", write("e1", b""), "empty"),
        Case("path", "blank-lines", write("e2", "\n\n   \n"), "empty"),
        Case("path", "only-comments", write("e3", "# nothing\n# here\n"), "empty"),
        # --- limits -------------------------------------------------------------------------
        Case("limits", "one-byte-too-big", write("l1", "#" * (1024 * 1024) + "\n"), "max_bytes=1048576"),
        Case("limits", "sparse-10-gib", _sparse, "max_bytes=1048576"),
        Case("limits", "one-huge-line", write("l2", "name: " + "x" * (1024 * 1024)), "max_bytes=1048576"),
        Case("limits", "thousands-of-problems", edit("l3", "  - provider: espeak   # instant, robotic: used when Piper cannot load or stalls\n    voice: en-us\n",
             many_items), "more problems not listed (limit max_issues=100)"),
        Case("limits", "huge-integer", edit("l4", "max_tokens: 80", "max_tokens: " + "9" * 5000), "max_tokens"),
        Case("limits", "half-a-million-values", write("l6", "tts: [" + "1," * 500_000 + "]\n"), "max_values=20000"),
        Case("limits", "many-unknown-keys", write("l7", "".join(f"k{i}: 1\n" for i in range(30_000))),
             "max_values=20000"),
        Case("limits", "huge-key", write("l5", "? " + "k" * 500_000 + "\n: 1\nname: a\n"), "(500000 characters)"),
        # --- numbers that can only be mistakes ----------------------------------------------
        Case("number", "inf", edit("x1", "threshold: 0.5", "threshold: .inf"), "finite number"),
        Case("number", "minus-inf", edit("x2", "first_byte: 6.0", "first_byte: -.inf"), "finite number"),
        Case("number", "nan", edit("x3", "temperature: 0.3", "temperature: .nan"), "finite number"),
        Case("number", "1e400", edit("x4", "min_silence: 0.4 ", "min_silence: 1e400 "), "finite number"),
        Case("number", "1.0e+400", edit("x5", "max_wait: 2.5", "max_wait: 1.0e+400"), "finite number"),
        Case("number", "boolean-count", edit("x6", "max_tokens: 80", "max_tokens: true"),
             "expected a number, got a boolean (allowed: 1 <= max_tokens <= 4096)"),
        Case("number", "boolean-seconds", edit("x7", "reprompt_after: 8", "reprompt_after: false"),
             "expected a number, got a boolean"),
        Case("number", "billion-tokens", edit("x8", "max_tokens: 80", "max_tokens: 1000000000"),
             "less than or equal to 4096"),
        Case("number", "billion-seconds", edit("x9", "max_call_seconds: 900", "max_call_seconds: 1e9"),
             "less than or equal to 86400"),
        Case("number", "negative", edit("x10", "n_threads: 1 ", "n_threads: -1 "), "greater than or equal to 1"),
        Case("number", "min-above-max-chars", edit("x11", "min_chars: 40", "min_chars: 400"),
             "min_chars must not exceed max_chars (220)"),
        Case("number", "timeout-of-a-year", edit("x12", "first_byte: 2.0", "first_byte: 31536000"),
             "less than or equal to 600"),
        # --- secrets from the environment ---------------------------------------------------
        Case("secret", "secret-in-a-number", edit("s1", "max_tokens: 80", "max_tokens: ${VF_SECRET}"),
             "got the value of ${VF_SECRET} (not shown)"),
        Case("secret", "secret-in-a-model-path", edit("s2", "  - provider: llama-cpp\n",
             "  - provider: llama-cpp\n    model_path: ${VF_SECRET_DIR}/m.gguf\n"), "no such file: ${VF_SECRET_DIR}"),
        Case("secret", "secret-as-provider", edit("s3", "  - provider: espeak", "  - provider: ${VF_SECRET}"),
             "unknown tts provider"),
        Case("secret", "secret-in-a-name", edit("s4", "name: local-assistant", "name: ${VF_SECRET} !"),
             "(not shown)"),
        # --- model paths ---------------------------------------------------------------------
        Case("model", "whisper-dir-missing", _stt_with("m1", "  - provider: whisper\n    model_path: nope/\n"),
             "no such file"),
        Case("model", "whisper-dir-is-a-file", _stt_with("m2", "  - provider: whisper\n    model_path: m2.yaml\n"),
             "is not a directory"),
        Case("model", "llama-path-is-a-directory", edit("m3", "  - provider: llama-cpp\n", _llm_path(".")),
             "is a directory"),
        Case("model", "llama-path-is-a-fifo", write("m4", _after(lambda tmp: _fifo_named(tmp, "model.gguf"),
             lambda tmp: changed(tmp, "  - provider: llama-cpp\n", _llm_path("model.gguf")))), "is a FIFO, not a regular file"),
        Case("model", "llama-path-loops", write("m5", _after(_loop, lambda tmp: changed(
             tmp, "  - provider: llama-cpp\n", _llm_path("loop-a.yaml")))), "too many levels of symbolic links"),
        Case("model", "recording-path-loops", write("m9", _after(_loop, lambda tmp: changed(
             tmp, f"input: {ROOT / 'agents/recordings/capital.wav'}", "input: loop-a.yaml"))),
             "cannot be read (Too many levels of symbolic links)"),
        Case("model", "output-names-a-folder", write("m10", lambda tmp: agent_text(tmp).replace(
             str(tmp / "call.wav"), f"{tmp}/out/")), "names a folder"),
        Case("model", "piper-json-missing", _with_model("m6", "  - provider: piper\n    model_path: voice.onnx\n",
             lambda tmp: (tmp / "voice.onnx").write_bytes(b"onnx")), "voice.onnx.json: no such file"),
        Case("model", "piper-config-is-a-dir", _with_model("m7", "  - provider: piper\n    model_path: v.onnx\n"
             "    config_path: models\n", lambda tmp: ((tmp / "v.onnx").write_bytes(b"x"), _model_dir(tmp))),
             "is a directory"),
        Case("model", "silero-path-is-a-device", edit("m8", "  - provider: silero\n",
             "  - provider: silero\n    model_path: /dev/zero\n"), "character device, not a regular file"),
        # --- YAML oddities -------------------------------------------------------------------
        Case("yaml", "two-documents", write("y1", lambda tmp: agent_text(tmp) + "---\nname: b\n"), "second one"),
        Case("yaml", "top-level-list", write("y2", "- name: a\n"), "must be a mapping"),
        Case("yaml", "top-level-scalar", write("y3", "42\n"), "must be a mapping"),
        Case("yaml", "complex-key", write("y4", "? [a, b]\n: 1\n"), "keys must be text, got a list"),
        Case("yaml", "python-tag", edit("y5", "name: local-assistant", "name: !!python/object/apply:os.system [id]"),
             "invalid YAML value"),
        Case("yaml", "set-tag", edit("y6", "description: A friendly", "tags: !!set {a, b}\ndescription: A friendly"),
             "tags such as"),
        Case("yaml", "surrogate-escape", write("y7", 'name: a\n"\\ud800": 1\n'), ": "),
        Case("yaml", "tab-indent", write("y8", "name: a\nprompt:\n\tsystem: x\n"), "invalid YAML"),
        Case("yaml", "unclosed-quote", write("y9", "name: 'abc\n"), "invalid YAML"),
        Case("yaml", "bad-binary", edit("y10", "name: local-assistant", "name: !!binary 'a'"), "invalid YAML value"),
    ]
    return cases
