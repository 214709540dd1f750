#!/usr/bin/env python3
"""Mixes the simulator's six vendor syslog files into one stream as a syslog relay would carry
it (benches/syslog_replay.sh): each vendor's gateways renamed apart (asa-gw-01, pulse-gw-01…),
the vendors' lines interleaved in proportion, and between them the traffic a gateway's syslog
is mostly made of (ASA connection builds and teardowns, Citrix TCP stats, PAN-OS portal
records, FortiGate forward-traffic logs, Pulse web requests, OpenVPN routing), which gatewatch
reads and counts as ignored. Usage: syslog_mix.py DIR OUT [TOTAL_LINES]"""
import sys

VENDORS = {
    "cisco-asa": "asa",
    "pulse": "pulse",
    "citrix-adc": "ns",
    "globalprotect": "gp",
    "fortigate": "fgt",
    "openvpn": "ovpn",
}

FILLER = {
    "cisco-asa": [
        "<166>Mar 18 2020 08:30:01 asa-gw-01 : %ASA-6-302013: Built outbound TCP connection {n} for outside:192.0.2.{a}/443 (192.0.2.{a}/443) to inside:10.1.{b}.{c}/{p} (198.51.100.{c}/{p})",
        "<166>Mar 18 2020 08:30:01 asa-gw-01 : %ASA-6-302014: Teardown TCP connection {n} for outside:192.0.2.{a}/443 to inside:10.1.{b}.{c}/{p} duration 0:00:{s:02} bytes {n} TCP FINs from inside",
    ],
    "pulse": [
        "<134>1 2020-03-18T08:30:01Z pulse-gw-01 PulseSecure: - - - 2020-03-18 08:30:01 - pulse-gw-01 - [198.51.100.{c}] u{n}(Staff)[Staff_Roles] - WebRequest completed, GET to https://intranet.example/app/{n} from 198.51.100.{c} result=200 sent={p} received={n} in {s} seconds",
    ],
    "citrix-adc": [
        "<135> 03/18/2020:08:30:01 GMT ns-gw-01 0-PPE-0 : default SSLVPN TCPCONNSTAT {n} 0 : Context u{b}@10.1.{b}.{c} - SessionId: {n} - User u{b} - Client_ip 10.1.{b}.{c} - Nat_ip \"Mapped Ip\" - Vserver 10.0.0.1:443 - Source 10.1.{b}.{c}:{p} - Destination 10.2.{a}.{c}:445 - Start_time \"03/18/2020:08:29:01 GMT\" - End_time \"03/18/2020:08:30:01 GMT\" - Duration 00:01:00  - Total_bytes_send {n} - Total_bytes_recv {p} - Total_compressedbytes_send 0 - Total_compressedbytes_recv 0 - Compression_ratio_send 0.00% - Compression_ratio_recv 0.00% - Access Allowed - Group(s) \"Staff\"",
    ],
    "globalprotect": [
        "<14>Mar 18 08:30:01 1,2020/03/18 08:30:01,0123456789,GLOBALPROTECT,0,2305,2020/03/18 08:30:01,vsys1,portal-prelogin,before-login,,,,FR,,198.51.100.{c},0.0.0.0,0.0.0.0,0.0.0.0,hid-{n},,5.2.4,Windows,\"Microsoft Windows 10 Pro , 64-bit\",1,,,\"\",success,,0,,0,GP Portal,{n},0x0",
        "<14>Mar 18 08:30:01 1,2020/03/18 08:30:01,0123456789,GLOBALPROTECT,0,2305,2020/03/18 08:30:01,vsys1,gateway-hip-check,host-info,,,u{b},,PC-{b},198.51.100.{c},0.0.0.0,10.1.{b}.{c},0.0.0.0,hid-{n},SER{n},5.2.4,,\"\",1,,,\"HIP report is not needed\",success,,0,,0,gp-gw-01,{n},0x0",
    ],
    "fortigate": [
        "<189>date=2020-03-18 time=08:30:01 devname=\"fgt-gw-01\" devid=\"FG100F0000000001\" eventtime=1584520201000000000 tz=\"+0000\" logid=\"0000000013\" type=\"traffic\" subtype=\"forward\" level=\"notice\" vd=\"root\" srcip=10.212.{b}.{c} srcport={p} srcintf=\"ssl.root\" dstip=10.2.{a}.{c} dstport=445 dstintf=\"internal\" sessionid={n} proto=6 action=\"close\" policyid=7 service=\"SMB\" duration={s} sentbyte={n} rcvdbyte={p} sentpkt={s} rcvdpkt={a}",
    ],
    "openvpn": [
        "<29>Mar 18 08:30:01 ovpn-gw-01 openvpn[812]: u{b}/198.51.100.{c}:{p} MULTI: Learn: 10.8.{b}.{c} -> u{b}/198.51.100.{c}:{p}",
    ],
}


def main():
    src, out = sys.argv[1], sys.argv[2]
    total = int(sys.argv[3]) if len(sys.argv) > 3 else 3_000_000
    streams = {}
    for fmt, prefix in VENDORS.items():
        lines = []
        latency = 0
        with open(f"{src}/{fmt}.log") as f:
            for l in f:
                # PAN-OS logs a tunnel's latency when it comes up, not every minute as the story
                # samples it: keep one sample in twenty.
                if ",gateway-tunnel-latency," in l:
                    latency += 1
                    if latency % 20:
                        continue
                lines.append(l.replace(" gw-", f" {prefix}-gw-").replace('"gw-', f'"{prefix}-gw-').replace(",gw-", f",{prefix}-gw-"))
        streams[fmt] = lines
    sessions = sum(len(s) for s in streams.values())
    per_line = max(0, (total - sessions) // max(1, sessions))
    n = 0
    with open(out, "w") as o:
        pos = {fmt: 0 for fmt in streams}
        while any(pos[f] < len(streams[f]) for f in streams):
            for fmt, lines in streams.items():
                if pos[fmt] >= len(lines):
                    continue
                o.write(lines[pos[fmt]])
                pos[fmt] += 1
                templates = FILLER[fmt]
                for k in range(per_line):
                    n += 1
                    t = templates[n % len(templates)]
                    o.write(t.format(n=n, a=n % 250 + 1, b=n // 7 % 250, c=n // 3 % 250 + 1, p=1024 + n % 60000, s=n % 60) + "\n")
    print(f"{out}: {sessions} session lines, {per_line} traffic lines after each")


if __name__ == "__main__":
    main()
