"""Registry of tasks: name -> Task (config schema, data, model, objective, analyses)."""

from grok_lightning.tasks import modadd
from grok_lightning.tasks.base import Task

TASKS: dict[str, Task] = {
    modadd.TASK.name: modadd.TASK,
}
