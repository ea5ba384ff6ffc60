"""The plots draw exactly the numbers they are given: read back from the figure's own lines."""

import matplotlib

matplotlib.use("Agg")

from course_lib import plots  # noqa: E402

LOG_HISTORY = [  # the shape of trainer.state.log_history: one row per logged step, then a summary row
    {"loss": 1.0, "grad_norm": 0.9, "learning_rate": 0.0, "step": 1},
    {"loss": 0.8, "grad_norm": 0.8, "learning_rate": 1e-4, "step": 2},
    {"eval_loss": 0.85, "step": 2},
    {"loss": 0.6, "grad_norm": 0.7, "learning_rate": 2e-4, "step": 3},
    {"train_runtime": 1.0, "train_loss": 0.8, "step": 3},
]


def test_losses_from_history_skips_summary_and_eval_rows():
    assert plots.losses_from_history(LOG_HISTORY) == ([1, 2, 3], [1.0, 0.8, 0.6])


def test_plot_loss_draws_the_logged_losses_their_mean_and_the_held_out_loss():
    figure = plots.plot_loss(LOG_HISTORY, smooth=2)
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    assert list(lines["logged loss"].get_xdata()) == [1, 2, 3]
    assert list(lines["logged loss"].get_ydata()) == [1.0, 0.8, 0.6]
    assert list(lines["mean of 2"].get_ydata()) == [0.9, 0.7]
    assert list(lines["held-out loss"].get_ydata()) == [0.85]


def test_plot_schedule_draws_one_point_per_step_and_marks_the_peak():
    rates = [0.0, 1e-4, 2e-4, 1e-4]
    figure = plots.plot_schedule(rates, warmup_steps=2)
    curve, peak = figure.axes[0].get_lines()
    assert list(curve.get_xdata()) == [1, 2, 3, 4] and list(curve.get_ydata()) == rates
    assert list(peak.get_xdata()) == [3, 3]  # steps 1-2 warm up; step 3 is the first at the peak rate
    assert "2 warm-up steps" in peak.get_label()
    assert len(plots.plot_schedule(rates, warmup_steps=0).axes[0].get_lines()) == 1


def test_eval_losses_and_the_loss_table_pair_each_evaluation_with_the_steps_before_it():
    history = [{"eval_loss": 1.2, "step": 0}, *LOG_HISTORY[:2], {"eval_loss": 0.85, "step": 2}, LOG_HISTORY[3],
               {"eval_loss": 0.7, "step": 3}, LOG_HISTORY[4]]
    assert plots.eval_losses_from_history(history) == ([0, 2, 3], [1.2, 0.85, 0.7])
    column = "training loss (mean since the last evaluation)"
    assert plots.loss_table(history) == [{"step": 0, column: None, "held-out loss": 1.2},
                                         {"step": 2, column: 0.9, "held-out loss": 0.85},
                                         {"step": 3, column: 0.6, "held-out loss": 0.7}]
    assert plots.loss_table(LOG_HISTORY[:2]) == []
