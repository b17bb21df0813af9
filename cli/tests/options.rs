//! Options of `lavit train` and `lavit extract` become library configs through one tested
//! conversion each (`TryFrom<&Opts>`): the library defaults where nothing is given, a TOML
//! file under the flags, and a clear error for a value that does not parse.

use clap::Parser;
use lavit_cli::{Cli, Command, extract, train};
use lavit_core::lavit::GateSchedule;
use lavit_core::lavit::losses::TrajGrad;
use lavit_core::lavit::targets::TopK;
use lavit_core::teacher::ExtractConfig;
use lavit_core::teacher::extract::TrajRows;
use lavit_core::train::{Stage2, TrainConfig};

fn train_opts(flags: &[&str]) -> train::Opts {
    let mut args = vec![
        "lavit",
        "train",
        "--student",
        "s",
        "--images",
        "i",
        "--out",
        "o",
    ];
    args.extend_from_slice(flags);
    match Cli::try_parse_from(args).unwrap().command {
        Command::Train(a) => a.opts,
        _ => unreachable!(),
    }
}

fn extract_opts(flags: &[&str]) -> extract::Opts {
    let mut args = vec![
        "lavit",
        "extract",
        "--teacher",
        "t",
        "--data",
        "d",
        "--images",
        "i",
        "--out",
        "o",
    ];
    args.extend_from_slice(flags);
    match Cli::try_parse_from(args).unwrap().command {
        Command::Extract(a) => a.opts,
        _ => unreachable!(),
    }
}

#[test]
fn train_options_default_merge_and_fail_clearly() {
    assert_eq!(
        TrainConfig::try_from(&train_opts(&[])).unwrap(),
        TrainConfig::default(),
        "no option: the library defaults"
    );
    let file: train::Opts = toml::from_str(
        "steps = 5\nlr = 0.1\ngate = \"two-stage:2\"\ntraj_grad = \"image\"\ntraj_top_k = 4\n",
    )
    .unwrap();
    let flags = train_opts(&["--steps", "7", "--stage2-lr", "0.01"]);
    assert_eq!(flags.traj_top_k.map(|t| t.0), None);
    let merged = flags.over(file);
    assert_eq!(merged.traj_top_k.map(|t| t.0), Some(TopK::Count(4)));
    let cfg = TrainConfig::try_from(&merged).unwrap();
    assert_eq!(cfg.steps, 7, "the flag wins over the file");
    assert_eq!(cfg.lr, 0.1, "the file fills what the flags leave");
    assert_eq!(cfg.gate, GateSchedule::TwoStage { closed_steps: 2 });
    assert_eq!(
        cfg.loss.traj_grad,
        TrajGrad::Image,
        "the file over the default"
    );
    assert_eq!(
        cfg.stage2,
        Some(Stage2 {
            lr: 0.01,
            warmup_steps: TrainConfig::default().warmup_steps
        })
    );
    for (flags, needle) in [
        (&["--gate", "sometimes"][..], "gate schedule"),
        (&["--traj-grad", "sideways"], "traj-grad"),
        (&["--stage2-lr", "0.1", "--gate", "off"], "two-stage"),
        (
            &["--lora-rank", "4", "--lora-targets", "q_proj,nope"],
            "nope",
        ),
        (&["--steps", "0"], "positive"),
    ] {
        let e = TrainConfig::try_from(&train_opts(flags))
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{flags:?}: {e}");
    }
}

#[test]
fn extract_options_default_merge_and_fail_clearly() {
    assert_eq!(
        ExtractConfig::try_from(&extract_opts(&[])).unwrap(),
        ExtractConfig::default()
    );
    let file: extract::Opts = toml::from_str("layers = 2\ntop_k = 8\n").unwrap();
    let cfg = ExtractConfig::try_from(
        &extract_opts(&["--top-k", "5%", "--traj-rows", "since-image"]).over(file),
    )
    .unwrap();
    assert_eq!(
        cfg,
        ExtractConfig {
            layers: 2,
            top_k: TopK::Fraction(0.05),
            rows: TrajRows::SinceImage,
        }
    );
    let e = ExtractConfig::try_from(&extract_opts(&["--traj-rows", "diagonal"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("trajectory rows"), "{e}");
    let e = ExtractConfig::try_from(&extract_opts(&["--layers", "0"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--layers"), "{e}");
    assert!(Cli::try_parse_from(["lavit", "extract", "--top-k", "lots"]).is_err());
}

/// `lavit train --help` shows the defaults the run uses (one source: `TrainConfig::default()`),
/// and a boolean option works as a bare flag too (`--grad-checkpointing`, as `lavit bench`
/// takes it) as well as with a value.
#[test]
fn train_help_shows_the_library_defaults_and_bool_flags_stand_alone() {
    let help = crate::common::ok(&["train", "--help"]);
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let d = TrainConfig::default();
    for (flag, value) in [
        ("--steps", d.steps.to_string()),
        ("--lr", format!("{:e}", d.lr)),
        ("--warmup", d.warmup_steps.to_string()),
        ("--grad-accum", d.grad_accum.to_string()),
        ("--weight-decay", d.weight_decay.to_string()),
        ("--lambda-vtop", d.loss.lambda_vtop.to_string()),
        ("--gate", "off".to_string()),
    ] {
        let after = help.split(&format!("{flag} <")).nth(1).expect(flag);
        let shown = after.split("[default: ").nth(1).expect(flag);
        assert!(
            shown.starts_with(&value),
            "{flag}: help says {shown:.20}, the run uses {value}"
        );
    }
    assert_eq!(d.gate, GateSchedule::Off);
    assert_eq!(
        train_opts(&["--grad-checkpointing"]).grad_checkpointing,
        Some(true)
    );
    assert_eq!(
        train_opts(&["--grad-checkpointing", "false"]).grad_checkpointing,
        Some(false)
    );
    assert_eq!(extract_opts(&["--stream-layers"]).stream_layers, Some(true));
}
