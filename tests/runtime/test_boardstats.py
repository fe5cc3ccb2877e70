"""Board statistics parsed from recorded text: tegrastats lines as Jetsons print them, /proc/stat,
and a thermal-zone tree laid out as the kernel does."""

from __future__ import annotations

import pytest

from edge_isp.runtime import boardstats as bs

# Lines as tegrastats prints them, published in open-source tegrastats parsers' tests.
AGX_ORIN_L4T36 = (
    "05-09-2026 18:42:06 RAM 18207/62841MB (lfb 466x4MB) SWAP 86/31420MB (cached 0MB) CPU [14%@2188,5%@2112,"
    "8%@2035,14%@2201,46%@1267,47%@1267,2%@1267,10%@1267,4%@1036,5%@1036,6%@1036,10%@1036] EMC_FREQ 3%@2133 "
    "GR3D_FREQ 0%@[0,0] NVENC 79%@166 NVDEC off NVJPG off NVJPG1 off VIC 36%@115 OFA off NVDLA0 off NVDLA1 off "
    "PVA0_FREQ off APE 174 cpu@52.562C soc2@48.437C soc0@49.093C tj@52.562C soc1@49.656C VDD_GPU_SOC "
    "2412mW/2412mW VDD_CPU_CV 1607mW/1607mW VIN_SYS_5V0 4707mW/4707mW"
)
ORIN_NANO_BUSY = (
    "10-08-2026 04:35:02 RAM 6712/7620MB (lfb 12x4MB) SWAP 369/3810MB (cached 8MB) "
    "CPU [38%@1497,2%@729,1%@729,0%@729,1%@729,0%@729] EMC_FREQ 61%@2133 GR3D_FREQ 99%@[611] NVDEC off NVJPG off "
    "VIC off OFA off APE 200 cpu@55.562C soc2@52.593C soc0@54.625C gpu@57.625C tj@57.625C soc1@53.937C "
    "VDD_IN 9251mW/8535mW VDD_CPU_GPU_CV 3512mW/1944mW VDD_SOC 2720mW/3659mW"
)
XAVIER_NX_JP512 = (
    "07-09-2024 13:31:31 RAM 3168/6851MB (lfb 2x4MB) SWAP 161/3426MB (cached 0MB) CPU [23%@1397,17%@1192,"
    "16%@1190,13%@1190,23%@1190,10%@1190] EMC_FREQ 2%@204 GR3D_FREQ 0%@[114] VIC_FREQ 115 APE 150 AUX@45C "
    "CPU@46.5C thermal@45.6C AO@45C GPU@45.5C PMIC@50C VDD_IN 2763mW/2846mW VDD_CPU_GPU_CV 650mW/670mW "
    "VDD_SOC 650mW/711mW"
)
XAVIER_OFF_CORES = (
    "RAM 2690/6854MB (lfb 6x1MB) SWAP 479/3427MB (cached 3MB) CPU [3%@1904,7%@1906,1%@1905,0%@1907,off,off] "
    "EMC_FREQ 0%@1600 GR3D_FREQ 0%@[510] VIC_FREQ 601 APE 150 AUX@39C CPU@39.5C AO@37.5C GPU@37.5C PMIC@50C"
)
ORIN_SENSORS_OFF = (
    "04-11-2025 10:36:27 RAM 4321/62801MB (lfb 1759x4MB) SWAP 19/31400MB (cached 0MB) CPU [0%@729,0%@729] "
    "EMC_FREQ 0%@2133 GR3D_FREQ 0%@[0,0] VIC_FREQ 729 APE 174 CV0@-256C CPU@44.562C Tboard@32C SOC2@40.093C "
    "Tdiode@33C SOC0@41.093C CV1@-256C GPU@-256C tj@44.343C SOC1@41.25C CV2@-256C VDD_GPU_SOC 2340mW/2340mW"
)
NANO_OLD_BSP = (
    "RAM 1473/3964MB (lfb 121x4MB) SWAP 0/1982MB (cached 0MB) IRAM 0/252kB(lfb 252kB) CPU [3%@102,2%@102,"
    "0%@102,0%@102] EMC_FREQ 0%@204 GR3D_FREQ 0%@76 APE 25 PLL@22.5C CPU@25C PMIC@100C GPU@23.5C AO@31.5C "
    "thermal@24.25C POM_5V_IN 1165/1165 POM_5V_GPU 0/0 POM_5V_CPU 125/125"
)


class TestTegrastats:
    def test_orin_nano_under_load(self):
        stats = bs.parse_tegrastats(ORIN_NANO_BUSY)
        assert stats.cpu_load == pytest.approx((38 + 2 + 1 + 0 + 1 + 0) / 6 / 100)
        assert stats.gpu_load == 0.99
        assert stats.temperatures_c["gpu"] == 57.625 and stats.temperatures_c["tj"] == 57.625
        assert (stats.ram_used_mb, stats.ram_total_mb, stats.power_mw) == (6712, 7620, 9251)
        assert stats.source == "tegrastats"

    def test_agx_orin_input_rail_and_two_gpcs(self):
        stats = bs.parse_tegrastats(AGX_ORIN_L4T36)
        assert stats.gpu_load == 0.0 and stats.power_mw == 4707  # VIN_SYS_5V0 on AGX Orin
        assert stats.cpu_load == pytest.approx(171 / 12 / 100)
        assert set(stats.temperatures_c) == {"cpu", "soc0", "soc1", "soc2", "tj"}

    def test_xavier_cores_that_are_off_are_left_out(self):
        stats = bs.parse_tegrastats(XAVIER_OFF_CORES)
        assert stats.cpu_load == pytest.approx(11 / 4 / 100)
        assert stats.power_mw is None and stats.temperatures_c["GPU"] == 37.5
        assert bs.parse_tegrastats(XAVIER_NX_JP512).power_mw == 2763

    def test_sensors_that_are_off_are_left_out(self):
        temps = bs.parse_tegrastats(ORIN_SENSORS_OFF).temperatures_c
        assert "GPU" not in temps and "CV0" not in temps and temps["CPU"] == 44.562

    def test_old_bsp_without_units(self):
        stats = bs.parse_tegrastats(NANO_OLD_BSP)
        assert stats.gpu_load == 0.0 and stats.power_mw == 1165 and stats.temperatures_c["GPU"] == 23.5

    def test_unrelated_text_gives_nothing(self):
        stats = bs.parse_tegrastats("tegrastats: command not found")
        assert (stats.cpu_load, stats.gpu_load, dict(stats.temperatures_c)) == (None, None, {})


# proc(5)'s layout; two readings made up for the test: 300 of 400 jiffies busy in between.
PROC_STAT_0 = (
    "cpu  10132153 290696 3084719 46828483 16683 0 25195 0 0 0\ncpu0 2533038 72674 771179 11707120 4170 0 6298 0 0 0\n"
)
PROC_STAT_1 = (
    "cpu  10132353 290696 3084819 46828583 16683 0 25195 0 0 0\ncpu0 2533088 72674 771204 11707145 4170 0 6298 0 0 0\n"
)


def test_proc_stat_load():
    before, after = bs.parse_proc_stat(PROC_STAT_0), bs.parse_proc_stat(PROC_STAT_1)
    assert after[1] - before[1] == 400 and bs.cpu_load(before, after) == pytest.approx(300 / 400)
    assert bs.cpu_load(after, after) is None
    with pytest.raises(ValueError, match="no 'cpu' line"):
        bs.parse_proc_stat("intr 1 2 3\n")


def test_thermal_zones_and_gpu_load(tmp_path):
    zones = {0: ("cpu-thermal", "45678\n"), 1: ("gpu-thermal", "39000\n"), 2: ("CV0-therm", "-256000\n"),
             3: ("cpu-thermal", "47000\n"), 10: ("tj-thermal", "50500\n")}  # fmt: skip
    for n, (kind, temp) in zones.items():
        zone = tmp_path / f"thermal_zone{n}"
        zone.mkdir()
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(temp)
    broken = tmp_path / "thermal_zone4"  # a zone whose sensor is off cannot be read
    (broken / "temp").mkdir(parents=True)
    (broken / "type").write_text("PMIC-Die\n")
    assert bs.read_thermal_zones(tmp_path) == {"cpu": 45.678, "gpu": 39.0, "cpu3": 47.0, "tj": 50.5}
    (tmp_path / "load").write_text("537\n")
    assert bs.read_gpu_load((tmp_path / "missing", tmp_path / "load")) == 0.537
    assert bs.read_gpu_load((tmp_path / "missing",)) is None


def test_monitor_reads_this_machine():
    monitor = bs.BoardMonitor(interval_s=0.05, use_tegrastats=False).start()
    try:
        for _ in range(100):
            latest = monitor.latest()
            if latest is not None and latest.cpu_load is not None:
                break
            monitor._stop.wait(0.05)
    finally:
        monitor.stop()
    assert latest is not None and 0.0 <= latest.cpu_load <= 1.0 and latest.source == "sysfs"
