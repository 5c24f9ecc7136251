from typer.testing import CliRunner

from inferplane.cli.rollout_cmd import app

runner = CliRunner()


def test_plan_prints_steps_and_gates() -> None:
    result = runner.invoke(app, ["plan", "chat", "--to", "chat-v2", "--hold", "2m"])
    assert result.exit_code == 0, result.output
    assert "rollout of chat-v2 to pool chat" in result.output
    assert "8m" in result.output  # four holds of 2 minutes
    assert "error rate" in result.output


def test_bad_steps_exit_2() -> None:
    result = runner.invoke(app, ["plan", "chat", "--to", "v2", "--steps", "5,50"])
    assert result.exit_code == 2 and "end at 100" in result.output
    result = runner.invoke(app, ["plan", "chat", "--to", "v2", "--steps", "5,x"])
    assert result.exit_code == 2 and "percentages" in result.output
