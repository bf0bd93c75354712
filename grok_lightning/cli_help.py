"""The command line's help: every config key with its type and default, read from the task schema
(TASKS[task].config_class), and the resolved config tree printed at the start of a run."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Iterator, Optional

from omegaconf import DictConfig
from rich.tree import Tree

PER_TASK = object()  # a shared key whose schema default differs between tasks

USAGE = """usage: python -m grok_lightning.train task=<task> [preset=<preset>] [key=value ...]
       python -m grok_lightning.train resume=<run dir> [key=value ...]
       python -m grok_lightning.train ... print_config=true   (print the resolved config, write nothing)
       python -m grok_lightning.train --help [task=<task>]     (the keys of one task)"""


def schema_keys(schema: Any, prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    """(dotted key, type name, default) of every leaf of a config dataclass (class or instance)."""
    instance = schema() if isinstance(schema, type) else schema
    try:
        hints = typing.get_type_hints(type(instance))
    except Exception:  # an annotation that does not resolve: show it as written
        hints = {}
    for field in dataclasses.fields(instance):
        value = getattr(instance, field.name)
        key = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(value):
            yield from schema_keys(value, f"{key}.")
        else:
            yield key, type_name(hints.get(field.name, field.type)), value


def type_name(annotation: Any) -> str:
    if isinstance(annotation, str):
        return annotation
    if typing.get_origin(annotation) is not None:  # Optional[int], list[int], ...
        return str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", str(annotation))


def key_lines(rows: list[tuple[str, str, Any]]) -> list[str]:
    width = max((len(k) for k, _, _ in rows), default=0)
    shown = lambda d: "(per task)" if d is PER_TASK else repr(d)  # noqa: E731
    return [f"  {key:<{width}}  {kind:<14} {shown(default)}" for key, kind, default in rows]


def help_text(task: Optional[str] = None) -> str:
    """Usage, then the keys of `task` (with its presets' defaults left to its YAML), or the keys
    every task shares and the tasks' names."""
    from grok_lightning.tasks import TASKS

    if task is not None:
        if task not in TASKS:
            from grok_lightning.config import ConfigError

            raise ConfigError(f"task={task}: unknown task; available tasks: {', '.join(sorted(TASKS))}")
        rows = list(schema_keys(TASKS[task].config_class))
        head = f"keys of task {task} (key, type, schema default):"
    else:
        per_task = [{k: (t, d) for k, t, d in schema_keys(TASKS[n].config_class)} for n in sorted(TASKS)]
        shared = [k for k in per_task[0] if all(k in keys for keys in per_task[1:])]
        rows = [(k, *per_task[0][k]) for k in shared]
        rows = [(k, t, d if all(p[k][1] == d for p in per_task) else PER_TASK) for k, t, d in rows]
        head = (
            f"tasks: {', '.join(sorted(TASKS))} (task=<name> --help lists a task's own keys)\n"
            "keys every task has (key, type, schema default):"
        )
    return "\n".join([USAGE, "", head, *key_lines(rows)])


def config_tree(cfg: DictConfig) -> Tree:
    tree = Tree(f"[bold]{cfg.task}[/] / preset [bold]{cfg.preset}[/]")

    def add(node: Tree, value) -> None:
        for key, item in value.items():
            if isinstance(item, DictConfig):
                add(node.add(f"[cyan]{key}[/]"), item)
            else:
                node.add(f"{key}: [green]{item}[/]")

    add(tree, cfg)
    return tree
