"""Generated protobuf and gRPC modules for the kubelet PodResources v1 and CRI v1 APIs.

Place in the flow: the Kubernetes clients (`collect/kubernetes/podresources.py`, `cri.py`)
decode the replies with the `*_pb2` modules; the tests' servers implement the `*_pb2_grpc`
servicers. Nothing here is written by hand except the two `.proto` files (wire-compatible
subsets of the published definitions, see their headers) and this note.

Regenerate after editing a `.proto` (a test checks they are current):

    python tools/gen_kubernetes_protos.py
"""
