"""Registry of tasks: name -> Task (config schema, data, model, objective, analyses)."""

from grok_lightning.tasks import fixed_embed, modadd, parity
from grok_lightning.tasks.base import Task

TASKS: dict[str, Task] = {
    modadd.TASK.name: modadd.TASK,
    parity.TASK.name: parity.TASK,
    fixed_embed.TASK.name: fixed_embed.TASK,
}
