"""The course's plots. Each returns its matplotlib Figure; Jupyter draws it once at the end of the cell, so assign
it (`figure = plot_loss(...)`) rather than leave it as the cell's value, which would draw it twice. Nothing is
saved unless asked."""

from __future__ import annotations


def _axes(title: str, xlabel: str, ylabel: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def losses_from_history(log_history: list[dict]) -> tuple[list[int], list[float]]:
    """(steps, training losses) from `trainer.state.log_history`, leaving out the final summary row."""
    rows = [row for row in log_history if "loss" in row and "step" in row]
    return [row["step"] for row in rows], [float(row["loss"]) for row in rows]


def eval_losses_from_history(log_history: list[dict]) -> tuple[list[int], list[float]]:
    """(steps, held-out losses) of the trainer's evaluations (`eval_strategy`), step 0 being `eval_on_start`."""
    rows = [row for row in log_history if "eval_loss" in row]
    return [row["step"] for row in rows], [float(row["eval_loss"]) for row in rows]


def loss_table(log_history: list[dict]) -> list[dict]:
    """One row per evaluation: its step, the held-out loss, and the mean training loss of the steps since the
    evaluation before (None at step 0): a fair pair, since a single step's loss rests on one batch."""
    steps, losses = losses_from_history(log_history)
    rows, previous = [], 0
    for step, eval_loss in zip(*eval_losses_from_history(log_history)):
        since = [loss for s, loss in zip(steps, losses) if previous < s <= step]
        rows.append({"step": step, "training loss (mean since the last evaluation)":
                     sum(since) / len(since) if since else None, "held-out loss": eval_loss})
        previous = step
    return rows


def plot_loss(log_history: list[dict], smooth: int = 5):
    """Training loss per logged step, with a running mean over `smooth` points to show the trend, and the
    held-out loss of each evaluation when the trainer made some."""
    steps, losses = losses_from_history(log_history)
    fig, ax = _axes("Training and held-out loss", "step", "loss (answer tokens only)")
    ax.plot(steps, losses, marker=".", alpha=0.5, label="logged loss")
    if len(losses) >= smooth:
        means = [sum(losses[i - smooth + 1:i + 1]) / smooth for i in range(smooth - 1, len(losses))]
        ax.plot(steps[smooth - 1:], means, linewidth=2, label=f"mean of {smooth}")
    eval_steps, eval_losses = eval_losses_from_history(log_history)
    if eval_steps:
        ax.plot(eval_steps, eval_losses, marker="o", label="held-out loss")
    ax.legend()
    return fig


def plot_schedule(learning_rates: list[float], warmup_steps: int):
    """The learning rate at every optimizer step, as the trainer's own scheduler produces it."""
    fig, ax = _axes("Learning-rate schedule", "optimizer step", "learning rate")
    ax.plot(range(1, len(learning_rates) + 1), learning_rates, marker="." if len(learning_rates) <= 100 else None)
    if warmup_steps:  # warm-up takes steps 1..warmup_steps; the next step is the first at the peak rate
        ax.axvline(warmup_steps + 1, linestyle="--", color="grey",
                   label=f"peak, after {warmup_steps} warm-up steps")
        ax.legend()
    return fig


def plot_lengths(lengths: list[int], max_length: int):
    """How many tokens each example has, against the max_length that truncates them."""
    fig, ax = _axes("Tokens per example", "tokens", "examples")
    ax.hist(lengths, bins=40)
    ax.axvline(max_length, color="red", linestyle="--", label=f"max_length = {max_length}")
    ax.legend()
    return fig
