"""The unit's safety paths, one file each, so a reader finds them by name.

- `estop`: ESTOP of every module (the `$cmd` ESTOP and the held stop button).
- `stop_button`: what a press or hold of a physical button does.
- `lease_loss`: the `on_controller_loss` policy when a lease expires or is released.
- `shutdown`: outputs safe on the way out, and the last word on a fatal failure.
- `tasks`: supervision of the unit's long-lived tasks (restart, or a safe exit).
- `every_module`: one action on every module, carrying on past a module that fails.

Every path acts on the outputs first and records afterwards, and keeps going
through the other modules when one of them fails.
"""
