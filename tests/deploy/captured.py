"""What the doctor reads on real machines, in the formats the tools print there: Jetson Linux's
release file on JetPack 6.2 (Orin Nano), 5.1.2 and 4.6.1; nvcc; v4l2-ctl for a Jetson CSI
IMX219, a USB webcam and a Raspberry Pi 5's CFE; rpicam-hello with two cameras; gst-inspect;
nvidia-smi; systemctl. Written out from those tools' output, trimmed to what is parsed."""

TEGRA_R36 = (
    "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, "
    "DATE: Wed Jan  8 01:49:37 UTC 2025\n"
    "# KERNEL_VARIANT: oot\n"
    "TARGET_USERSPACE_LIB_DIR=nvidia\n"
    "TARGET_USERSPACE_LIB_DIR_PATH=usr/lib/aarch64-linux-gnu/nvidia\n"
)
TEGRA_R35 = (
    "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, "
    "DATE: Tue Aug  1 19:57:35 UTC 2023\n"
)
TEGRA_R32 = (
    "# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64, "
    "DATE: Sat Feb 19 17:05:08 UTC 2022\n"
)

MODEL_ORIN_NANO = "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super\x00"
MODEL_PI5 = "Raspberry Pi 5 Model B Rev 1.0\x00"

NVCC = """nvcc: NVIDIA (R) Cuda compiler driver
Copyright (c) 2005-2024 NVIDIA Corporation
Built on Wed_Aug_14_10:14:07_PDT_2024
Cuda compilation tools, release 12.6, V12.6.68
Build cuda_12.6.r12.6/compiler.34714021_0
"""
CUDA_VERSION_JSON = '{\n   "cuda" : {\n      "name" : "CUDA SDK",\n      "version" : "12.6.68"\n   }\n}\n'

V4L2_IMX219_JETSON = """ioctl: VIDIOC_ENUM_FMT
\tType: Video Capture

\t[0]: 'RG10' (10-bit Bayer RGRG/GBGB)
\t\tSize: Discrete 3280x2464
\t\t\tInterval: Discrete 0.048s (21.000 fps)
\t\tSize: Discrete 3280x1848
\t\t\tInterval: Discrete 0.036s (28.000 fps)
\t\tSize: Discrete 1920x1080
\t\t\tInterval: Discrete 0.033s (30.000 fps)
\t\tSize: Discrete 1640x1232
\t\t\tInterval: Discrete 0.033s (30.000 fps)
\t\tSize: Discrete 1280x720
\t\t\tInterval: Discrete 0.017s (60.000 fps)
"""

V4L2_USB_WEBCAM = """ioctl: VIDIOC_ENUM_FMT
\tType: Video Capture

\t[0]: 'MJPG' (Motion-JPEG, compressed)
\t\tSize: Discrete 1280x720
\t\t\tInterval: Discrete 0.033s (30.000 fps)
\t\tSize: Discrete 640x480
\t\t\tInterval: Discrete 0.033s (30.000 fps)
\t[1]: 'YUYV' (YUYV 4:2:2)
\t\tSize: Discrete 640x480
\t\t\tInterval: Discrete 0.033s (30.000 fps)
"""

V4L2_PI5_CFE = """ioctl: VIDIOC_ENUM_FMT
\tType: Video Capture

\t[0]: 'YUYV' (YUYV 4:2:2)
\t\tSize: Stepwise 16x16 - 16376x16383 with step 2/1
\t[1]: 'pRAA' (10-bit Bayer RGRG/GBGB Packed)
\t\tSize: Stepwise 16x16 - 16376x16383 with step 16/1
\t[2]: 'RG16' (16-bit Bayer RGRG/GBGB)
\t\tSize: Stepwise 16x16 - 16376x16383 with step 16/1
\t[3]: 'PC1R' (PiSP 8b RGRG/GBGB mode1 compr)
\t\tSize: Stepwise 16x16 - 16376x16383 with step 16/1
"""

RPICAM_TWO_CAMERAS = """Available cameras
-----------------
0 : imx708 [4608x2592 10-bit RGGB] (/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a)
    Modes: 'SRGGB10_CSI2P' : 1536x864 [120.13 fps - (768, 432)/3072x1728 crop]
                             2304x1296 [56.03 fps - (0, 0)/4608x2592 crop]
                             4608x2592 [14.35 fps - (0, 0)/4608x2592 crop]

1 : imx477 [4056x3040 12-bit RGGB] (/base/axi/pcie@120000/rp1/i2c@80000/imx477@1a)
    Modes: 'SRGGB10_CSI2P' : 1332x990 [120.05 fps - (696, 528)/2664x1980 crop]
           'SRGGB12_CSI2P' : 2028x1080 [50.03 fps - (0, 440)/4056x2160 crop]
"""
RPICAM_NONE = "No cameras available!\n"

GST_PRESENT = """Factory Details:
  Rank                     primary (256)
  Long-name                x264 H.264 Encoder
  Klass                    Codec/Encoder/Video
"""
GST_ABSENT = "No such element or plugin 'nvv4l2h264enc'\n"

NVIDIA_SMI = "NVIDIA H100 80GB HBM3, 9.0\n"

SYSTEMCTL_ACTIVE = "LoadState=loaded\nActiveState=active\nSubState=running\nNRestarts=0\n"
SYSTEMCTL_FAILED = "LoadState=loaded\nActiveState=failed\nSubState=failed\nNRestarts=10\n"
SYSTEMCTL_NOT_FOUND = "LoadState=not-found\nActiveState=inactive\nSubState=dead\nNRestarts=0\n"
