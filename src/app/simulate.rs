//! `gatewatch simulate`: checks the flags, then plays the story into a file or a topic.

use anyhow::Context;

use crate::cli::SimulateArgs;
use crate::event::parse_rfc3339_ms;
use crate::sim::{self, Playback, Target};

/// `gatewatch simulate`.
pub fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let start = parse_rfc3339_ms(&format!("{}T00:00:00Z", args.start)).with_context(|| {
        format!(
            "--start {:?} is not a date; write it as YYYY-MM-DD",
            args.start
        )
    })?;
    if args.days == 0 {
        anyhow::bail!("--days must be at least 1");
    }
    if !(args.speed >= 0.0 && args.speed.is_finite()) {
        anyhow::bail!("--speed must be 0 (as fast as possible) or a positive factor such as 60");
    }
    if args.output_format == crate::cli::InputFormatArg::Auto {
        anyhow::bail!("--output-format auto names no format to write; name one: json, cisco-asa, pulse, citrix-adc, globalprotect, fortigate or openvpn");
    }
    let plan = Playback {
        start_day: start / sim::DAY,
        days: args.days,
        seed: args.seed,
        users: args.users,
        speed: args.speed,
        fast_until: None,
        output: args.output_format.into(),
    };
    let target = match (args.out, args.brokers) {
        (Some(path), _) => Target::File(path),
        (None, Some(brokers)) => {
            let topic = args.topic.expect("clap requires --topic");
            crate::config::validate_brokers(&brokers)
                .map_err(|m| anyhow::anyhow!("--brokers: {m}"))?;
            Target::Kafka { brokers, topic }
        }
        (None, None) => unreachable!("clap requires --out or --brokers"),
    };
    let n = sim::simulate(&plan, &target)?;
    let shown = match &target {
        Target::File(path) => path.display().to_string(),
        Target::Kafka { brokers, topic } => format!("topic {topic} on {brokers}"),
    };
    match plan.output {
        crate::event::InputFormat::Json => eprintln!("simulate: wrote {n} events to {shown}"),
        f => eprintln!(
            "simulate: told the story's {n} events as {f} syslog (what its lines cannot say left out, see docs/gateways.md) to {shown}"
        ),
    }
    Ok(())
}
