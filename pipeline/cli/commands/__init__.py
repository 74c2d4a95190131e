"""One module per subcommand group; each defines ``register(app: typer.Typer) -> None``.

Modules import heavy stage code inside the command functions so ``ldct --help`` stays fast.
"""
