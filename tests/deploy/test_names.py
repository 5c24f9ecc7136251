"""Object names fit RFC 1123 and never collide; GPU resources and product labels."""

from inferplane.config.schema import Resources
from inferplane.deploy.names import dns_label, gpu_product, gpu_resource, pool_object


def test_names() -> None:
    assert pool_object("chat-primary") == "inferplane-chat-primary"
    odd = pool_object("Chat_Primary.rollout")
    assert odd.startswith("inferplane-chat-primary-rollout-") and len(odd) <= 63
    assert dns_label("a.b") != dns_label("a-b")
    assert len(dns_label("x" * 100)) == 63


def test_gpu_requests() -> None:
    assert gpu_resource(Resources()) is None
    assert gpu_resource(Resources(gpu="H100", count=2)) == ("nvidia.com/gpu", 2)
    assert gpu_resource(Resources(mig="1g.10gb")) == ("nvidia.com/mig-1g.10gb", 1)
    assert gpu_product(Resources(gpu="L4")) == "NVIDIA-L4"
    assert gpu_product(Resources(gpu="B200")) is None
