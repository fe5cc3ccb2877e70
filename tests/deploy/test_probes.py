"""The doctor's parsers, on the text the tools print on boards and PCs."""

from __future__ import annotations

import pytest

from edge_isp.deploy import probes

from . import captured


@pytest.mark.parametrize(
    ("text", "version", "jetpack", "board"),
    [
        (captured.TEGRA_R36, "36.4.3", "6.2", "generic"),
        (captured.TEGRA_R35, "35.4.1", "5.1.2", "t186ref"),
        (captured.TEGRA_R32, "32.7.1", "4.6.1", "t210ref"),
        ("# R36 (release), REVISION: 9.1, GCID: 1, BOARD: generic", "36.9.1", "6.x", "generic"),
        ("# R36 (release), REVISION: 3, GCID: 1", "36.3.0", "6.0", ""),
    ],
)
def test_nv_tegra_release(text, version, jetpack, board):
    release = probes.parse_nv_tegra_release(text)
    assert (release.version, release.jetpack, release.board) == (version, jetpack, board)


def test_not_a_release_file():
    assert probes.parse_nv_tegra_release("") is None
    assert probes.parse_nv_tegra_release("Ubuntu 22.04.4 LTS") is None
    assert probes.parse_nv_tegra_release("# R99 (release), REVISION: 1.0").jetpack is None


def test_l4t_package_version_as_dpkg_prints_it():
    release = probes.parse_l4t_package_version("36.4.3-20250107174145")
    assert release.version == "36.4.3" and release.jetpack == "6.2"
    assert probes.parse_l4t_package_version("") is None


def test_device_model():
    jetson = probes.parse_device_model(captured.MODEL_ORIN_NANO)
    assert jetson.family == "jetson" and "\x00" not in jetson.name and jetson.name.endswith("Super")
    assert probes.parse_device_model(captured.MODEL_PI5).family == "raspberry-pi"
    assert probes.parse_device_model("Pine64 RockPro64 v2.1\x00").family == "other"
    assert probes.parse_device_model("\x00") is None


def test_cuda_version_from_each_source():
    assert probes.parse_cuda_version(captured.NVCC) == "12.6.68"
    assert probes.parse_cuda_version(captured.CUDA_VERSION_JSON) == "12.6.68"
    assert probes.parse_cuda_version("CUDA Version 10.2.300\n") == "10.2.300"
    assert probes.parse_cuda_version("{broken") is None
    assert probes.parse_cuda_version("bash: nvcc: command not found") is None


def test_v4l2_formats_of_a_jetson_csi_camera():
    (fmt,) = probes.parse_v4l2_formats(captured.V4L2_IMX219_JETSON)
    assert fmt.fourcc == "RG10" and fmt.is_bayer
    assert fmt.sizes == ("3280x2464", "3280x1848", "1920x1080", "1640x1232", "1280x720")


def test_v4l2_formats_of_a_usb_webcam_are_not_raw():
    formats = probes.parse_v4l2_formats(captured.V4L2_USB_WEBCAM)
    assert [f.fourcc for f in formats] == ["MJPG", "YUYV"]
    assert formats[0].sizes == ("1280x720", "640x480")
    assert not any(f.is_bayer for f in formats)


def test_v4l2_formats_of_the_pi5_front_end_with_stepwise_sizes():
    formats = probes.parse_v4l2_formats(captured.V4L2_PI5_CFE)
    assert [(f.fourcc, f.is_bayer) for f in formats] == [
        ("YUYV", False),
        ("pRAA", True),
        ("RG16", True),
        ("PC1R", True),
    ]
    assert formats[1].sizes == ("16x16-16376x16383",)


@pytest.mark.parametrize("fourcc", ["BA81", "RGGB", "RG10", "BG12", "GB16", "BA10", "pgAA", "pRCC", "PC1g", "BYR2"])
def test_bayer_fourccs(fourcc):
    assert probes.V4L2Format(fourcc, "", ()).is_bayer


@pytest.mark.parametrize("fourcc", ["YUYV", "MJPG", "NV12", "GREY", "Y10 "])
def test_non_bayer_fourccs(fourcc):
    assert not probes.V4L2Format(fourcc, "some format", ()).is_bayer


def test_libcamera_camera_list():
    cameras = probes.parse_libcamera_cameras(captured.RPICAM_TWO_CAMERAS)
    assert [(c.index, c.sensor, c.size, c.bit_depth, c.bayer_order) for c in cameras] == [
        (0, "imx708", "4608x2592", 10, "RGGB"),
        (1, "imx477", "4056x3040", 12, "RGGB"),
    ]
    assert probes.parse_libcamera_cameras(captured.RPICAM_NONE) == []


def test_gst_element_present_needs_exit_zero_and_details():
    assert probes.gst_element_present(0, captured.GST_PRESENT)
    assert not probes.gst_element_present(1, captured.GST_ABSENT)
    assert not probes.gst_element_present(0, "")


def test_systemctl_state_and_gpu_query():
    assert probes.parse_systemctl_state("active\n") == "active"
    assert probes.parse_systemctl_state("failed") == "failed"
    assert probes.parse_systemctl_state("") == "unknown"
    assert probes.parse_systemctl_state("System has not been booted with systemd") == "unknown"
    assert probes.parse_gpu_query(captured.NVIDIA_SMI) == ("NVIDIA H100 80GB HBM3", "9.0")
    assert probes.parse_gpu_query("No devices were found") is None


@pytest.mark.parametrize(
    ("name", "capability"),
    [
        ("NVIDIA Jetson Orin Nano Developer Kit", "8.7"),
        ("NVIDIA Jetson AGX Orin Developer Kit", "8.7"),
        ("NVIDIA Jetson Xavier NX Developer Kit", "7.2"),
        ("NVIDIA Jetson Nano Developer Kit", "5.3"),
        ("Some carrier board", None),
    ],
)
def test_compute_capability_of_jetson_boards(name, capability):
    assert probes.compute_capability_for_board(name) == capability
