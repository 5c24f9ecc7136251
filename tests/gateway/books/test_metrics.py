from inferplane.gateway.books.metrics import GatewayMetrics


def test_series_names_and_labels() -> None:
    metrics = GatewayMetrics()
    metrics.observe("chat", "main", 200, 0.02)
    metrics.observe("chat", "main", 200, 0.03)
    metrics.observe("_unknown", "", 404, 0.001)
    metrics.decided("default")
    text = metrics.render().decode()
    assert 'inference_request_total{model="chat",pool="main",status="200"} 2.0' in text
    assert 'inference_request_total{model="_unknown",pool="",status="404"} 1.0' in text
    assert 'inference_request_duration_seconds_count{model="chat",pool="main"} 2.0' in text
    assert 'inference_route_decisions_total{rule="default"} 1.0' in text
    assert "inference_time_to_first_token_seconds" in text
    assert GatewayMetrics().render() != text.encode()  # each app owns its registry
