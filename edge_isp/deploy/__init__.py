"""Putting edge-isp on a board and keeping it running: `edge-isp doctor`, `edge-isp deploy`,
and the run config the board's service reads."""
