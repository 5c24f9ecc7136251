from inferplane.telemetry.promql import metric_names


def test_functions_labels_ranges_and_keywords_are_not_names() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (pool, le) (rate("
        'inference_request_duration_seconds_bucket{job="gateway", status=~"5.."}[5m])))'
        " > on(pool) group_left inference_pool_sla_seconds"
    )
    assert metric_names(expr) == {
        "inference_request_duration_seconds_bucket",
        "inference_pool_sla_seconds",
    }


def test_colons_offsets_grafana_variables_and_numbers() -> None:
    expr = (
        'sum(rate(vllm:generation_tokens_total{model_name=~"$model"}[$__rate_interval]))'
        " < 0.8 * sum(rate(vllm:generation_tokens_total[15m] offset 1h)) and bool 1e3"
    )
    assert metric_names(expr) == {"vllm:generation_tokens_total"}


def test_a_selector_by_name_alone() -> None:
    assert metric_names("DCGM_FI_DEV_GPU_TEMP > 83") == {"DCGM_FI_DEV_GPU_TEMP"}
