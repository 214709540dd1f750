//! Criterion benches of gateway syslog decoding, on one core: each vendor's session lines (the
//! simulator's 18 March storm told as that vendor's syslog) and a relay's mixed stream (six
//! vendors' session lines among the traffic lines a gateway mostly sends, which are ignored),
//! decoded into Arrow batches as `replay` and the Kafka path do. The JSON story's decode is
//! `cargo bench --bench engine` (`decode_to_arrow`). `cargo bench --bench syslog`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gatewatch::event::syslog::Clock;
use gatewatch::event::InputFormat;
use gatewatch::ingest::{decode_chunk_as, Chunk, Columns, LineFormat, MAX_RECORD_BYTES};
use gatewatch::sim::syslog::VendorWriter;

/// A traffic line of each vendor, ignored by gatewatch (see benches/syslog_mix.py, which mixes
/// the same kinds for the replay bench).
fn traffic(format: InputFormat, n: u64) -> String {
    let (a, b, c, p) = (n % 250 + 1, n / 7 % 250, n / 3 % 250 + 1, 1024 + n % 60_000);
    match format {
        InputFormat::CiscoAsa => format!("<166>Mar 18 2020 08:30:01 gw-01 : %ASA-6-302013: Built outbound TCP connection {n} for outside:192.0.2.{a}/443 (192.0.2.{a}/443) to inside:10.1.{b}.{c}/{p} (198.51.100.{c}/{p})"),
        InputFormat::Pulse => format!("<134>1 2020-03-18T08:30:01Z gw-01 PulseSecure: - - - 2020-03-18 08:30:01 - gw-01 - [198.51.100.{c}] u{n}(Staff)[Staff_Roles] - WebRequest completed, GET to https://intranet.example/app/{n} from 198.51.100.{c} result=200 sent={p} received={n} in 3 seconds"),
        InputFormat::CitrixAdc => format!("<135> 03/18/2020:08:30:01 GMT gw-01 0-PPE-0 : default SSLVPN TCPCONNSTAT {n} 0 : Context u{b}@10.1.{b}.{c} - SessionId: {n} - User u{b} - Client_ip 10.1.{b}.{c} - Nat_ip \"Mapped Ip\" - Vserver 10.0.0.1:443 - Source 10.1.{b}.{c}:{p} - Destination 10.2.{a}.{c}:445 - Start_time \"03/18/2020:08:29:01 GMT\" - End_time \"03/18/2020:08:30:01 GMT\" - Duration 00:01:00  - Total_bytes_send {n} - Total_bytes_recv {p} - Access Allowed - Group(s) \"Staff\""),
        InputFormat::GlobalProtect => format!("<14>Mar 18 08:30:01 1,2020/03/18 08:30:01,0123456789,GLOBALPROTECT,0,2305,2020/03/18 08:30:01,vsys1,portal-prelogin,before-login,,,,FR,,198.51.100.{c},0.0.0.0,0.0.0.0,0.0.0.0,hid-{n},,5.2.4,Windows,\"Microsoft Windows 10 Pro , 64-bit\",1,,,\"\",success,,0,,0,GP Portal,{n},0x0"),
        InputFormat::FortiGate => format!("<189>date=2020-03-18 time=08:30:01 devname=\"gw-01\" devid=\"FG100F0000000001\" eventtime=1584520201000000000 tz=\"+0000\" logid=\"0000000013\" type=\"traffic\" subtype=\"forward\" level=\"notice\" vd=\"root\" srcip=10.212.{b}.{c} srcport={p} dstip=10.2.{a}.{c} dstport=445 sessionid={n} proto=6 action=\"close\" policyid=7 duration=5 sentbyte={n} rcvdbyte={p}"),
        InputFormat::OpenVpn => format!("<29>Mar 18 08:30:01 gw-01 openvpn[812]: u{b}/198.51.100.{c}:{p} MULTI: Learn: 10.8.{b}.{c} -> u{b}/198.51.100.{c}:{p}"),
        InputFormat::Json | InputFormat::Auto => unreachable!(),
    }
}

/// The storm day's session lines as `format`'s syslog.
fn story(format: InputFormat) -> Vec<String> {
    let day = gatewatch::event::parse_rfc3339_ms("2020-03-18T00:00:00Z").unwrap() / 86_400_000;
    let d = gatewatch::sim::simulate_day(day, 1, None);
    let mut w = VendorWriter::new(format);
    let mut lines = Vec::new();
    for e in &d.events {
        w.render(&e.line, &mut lines);
    }
    lines
}

/// Lines as ~1 MiB chunks.
fn chunks(lines: &[String]) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::new()];
    for l in lines {
        if out.last().unwrap().len() > 1 << 20 {
            out.push(Vec::new());
        }
        let c = out.last_mut().unwrap();
        c.extend_from_slice(l.as_bytes());
        c.push(b'\n');
    }
    out
}

fn decode_all(chunks: &[Vec<u8>], lines: &LineFormat) -> usize {
    let mut rows = 0;
    for c in chunks {
        let d = decode_chunk_as(
            Chunk {
                raw: c.clone(),
                truncated: false,
                shared: None,
            },
            MAX_RECORD_BYTES,
            Columns::All,
            lines,
        );
        assert!(d.rejects.is_empty(), "{:?}", &d.rejects[..1]);
        rows += d.batch.num_rows();
    }
    black_box(rows)
}

fn benches(c: &mut Criterion) {
    let clock = Clock::in_year(2020, 0);
    let mut g = c.benchmark_group("syslog");
    g.sample_size(10);
    let mut per_vendor: Vec<Vec<String>> = Vec::new();
    for &format in &InputFormat::ALL[1..7] {
        let lines = story(format);
        let data = chunks(&lines);
        g.throughput(Throughput::Elements(lines.len() as u64));
        let lf = LineFormat { format, clock };
        g.bench_function(format!("sessions/{format}"), |b| {
            b.iter(|| decode_all(&data, &lf))
        });
        // A relay's stream: each session line among a dozen traffic lines.
        let mut mixed = Vec::new();
        for (i, l) in lines.into_iter().take(4000).enumerate() {
            mixed.push(l);
            for k in 0..12 {
                mixed.push(traffic(format, (i * 12 + k) as u64));
            }
        }
        per_vendor.push(mixed);
    }
    // The vendors interleaved as a relay carries them.
    let longest = per_vendor.iter().map(Vec::len).max().unwrap_or(0);
    let mut interleaved = Vec::new();
    for i in 0..longest {
        for v in &mut per_vendor {
            if let Some(l) = v.get_mut(i) {
                interleaved.push(std::mem::take(l));
            }
        }
    }
    let data = chunks(&interleaved);
    g.throughput(Throughput::Elements(interleaved.len() as u64));
    let lf = LineFormat {
        format: InputFormat::Auto,
        clock,
    };
    g.bench_function("mixed/auto", |b| b.iter(|| decode_all(&data, &lf)));
    g.finish();
}

criterion_group!(syslog, benches);
criterion_main!(syslog);
