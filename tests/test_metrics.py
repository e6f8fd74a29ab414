"""/metrics: Prometheus text with latency, predictions, labels, serving version, last snapshot."""

from tests.conftest import predict


def test_metrics_exposes_the_documented_series(client, auth, stored_history):
    body = predict(client, auth)
    client.post(f"/api/v1/predictions/{body['id']}/feedback", json={"correct": True}, headers=auth)
    text = client.get("/metrics").text
    assert 'fraudapp_request_seconds_bucket{endpoint="api.create_predictions"' in text
    decision = "fraud" if body["is_fraud"] else "genuine"
    assert f'fraudapp_predictions_total{{decision="{decision}",model_version="v1"}}' in text
    assert 'fraudapp_labels_total{source="feedback"}' in text
    assert 'fraudapp_serving_model_info{model_version="v1"} 1.0' in text
    assert "fraudapp_monitor_f1 0.0" in text
