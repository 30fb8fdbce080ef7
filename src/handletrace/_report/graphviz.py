"""Reference paths drawn by Graphviz: DOT text (:func:`to_dot`) and, when Graphviz is
installed, SVG (:func:`to_svg`)."""

from __future__ import annotations

import os
import shutil
import subprocess

from .._analysis.paths import PathStep, RefPath

__all__ = ["to_dot", "to_svg"]


def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot_node_label(step: PathStep) -> str:
    if step.filename:
        return f"{step.label}\n{os.path.basename(step.filename)}:{step.lineno}"
    return step.label


def to_dot(path: RefPath, name: str = "handletrace") -> str:
    """The path as a Graphviz DOT digraph (nodes are objects, edge labels are notes)."""
    lines = [
        f"digraph {_dot_string(name)} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded", fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for index, step in enumerate(path.steps):
        lines.append(f"  n{index} [label={_dot_string(_dot_node_label(step))}];")
    if path.kind == "root" and path.root:
        lines.append(f'  root [shape=plaintext, style="", label={_dot_string(path.root)}];')
        if path.steps:
            lines.append("  root -> n0;")
    for index, step in enumerate(path.steps):
        if index + 1 < len(path.steps):
            target = f"n{index + 1}"
        elif path.kind == "cycle":
            target = "n0"
        else:
            break
        attributes = f" [label={_dot_string(step.note)}]" if step.note else ""
        if path.kind == "cycle" and target == "n0":
            attributes = (
                f" [label={_dot_string(step.note)}, color=red, fontcolor=red]"
                if step.note
                else " [color=red]"
            )
        lines.append(f"  n{index} -> {target}{attributes};")
    previous = f"n{path.held_from}"
    previous_note = path.held[0].note if path.held else ""
    for index, step in enumerate(path.held[1:], 1):
        lines.append(f"  h{index} [label={_dot_string(_dot_node_label(step))}];")
        attributes = f" [label={_dot_string(previous_note)}]" if previous_note else ""
        lines.append(f"  {previous} -> h{index}{attributes};")
        previous, previous_note = f"h{index}", step.note
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_svg(path: RefPath, name: str = "handletrace", *, timeout: float = 30.0) -> str:
    """The path drawn as SVG by Graphviz ``dot``; raises ``RuntimeError`` if it is not installed."""
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            "Graphviz 'dot' was not found on PATH: install Graphviz (e.g. apt-get install "
            "graphviz) for SVG, or use to_dot() and render it elsewhere"
        )
    result = subprocess.run(
        [dot, "-Tsvg"],
        input=to_dot(path, name),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"Graphviz dot failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout
