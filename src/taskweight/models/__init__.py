"""The two-task network of the paper (§V-A, Fig. 2): ResNet10 encoder, YOLO-style detection
decoder and FCN8-style segmentation decoder."""

from taskweight.models.depth import DepthHead
from taskweight.models.detection import Detections, YoloDetectionHead, kmeans_anchors
from taskweight.models.encoder import ResNet10Encoder, load_imagenet_weights
from taskweight.models.multitask import MultiTaskNet, resnet10_multitask
from taskweight.models.segmentation import FCN8SegmentationHead

__all__ = [
    "DepthHead",
    "Detections",
    "FCN8SegmentationHead",
    "MultiTaskNet",
    "ResNet10Encoder",
    "YoloDetectionHead",
    "kmeans_anchors",
    "load_imagenet_weights",
    "resnet10_multitask",
]
