//! The command line: serve (where), or run the demo.

use std::net::{Ipv4Addr, SocketAddr};

pub const USAGE: &str = "usage: cargo run --example http [-- --addr HOST:PORT | --demo]
  (no option)      serve on 127.0.0.1:3000, or on 127.0.0.1:$PORT, until Ctrl-C
  --addr HOST:PORT serve on that address
  --demo           run a scripted session against the service on a free port, then exit
With DATABASE_URL set, events are kept in PostgreSQL (schema http_example), else in memory.";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Mode {
    Serve(SocketAddr),
    Demo,
    Help,
}

/// Why the command line was not understood.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    #[error("unknown argument {0:?}\n{USAGE}")]
    Unknown(String),
    #[error("--addr needs a value, e.g. --addr 127.0.0.1:8080")]
    MissingAddr,
    #[error("--addr {value:?} is not an address such as 127.0.0.1:8080: {source}")]
    BadAddr {
        value: String,
        #[source]
        source: std::net::AddrParseError,
    },
    #[error("PORT {value:?} is not a port number: {source}")]
    BadPort {
        value: String,
        #[source]
        source: std::num::ParseIntError,
    },
}

/// The mode the arguments ask for; `port` is the `PORT` environment variable.
pub fn parse_args(
    mut args: impl Iterator<Item = String>,
    port: Option<String>,
) -> Result<Mode, ArgsError> {
    let mut mode = None;
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "--demo" => {
                mode = Some(Mode::Demo);
                continue;
            }
            "--help" | "-h" => return Ok(Mode::Help),
            "--addr" => args.next().ok_or(ArgsError::MissingAddr)?,
            other => match other.strip_prefix("--addr=") {
                Some(value) => value.to_owned(),
                None => return Err(ArgsError::Unknown(arg)),
            },
        };
        let addr = value.parse().map_err(|source| ArgsError::BadAddr {
            value: value.clone(),
            source,
        })?;
        mode = Some(Mode::Serve(addr));
    }
    if let Some(mode) = mode {
        return Ok(mode);
    }
    let port = match port {
        Some(value) if !value.is_empty() => value
            .parse()
            .map_err(|source| ArgsError::BadPort { value, source })?,
        _ => 3000,
    };
    Ok(Mode::Serve(SocketAddr::from((Ipv4Addr::LOCALHOST, port))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], port: Option<&str>) -> Result<Mode, ArgsError> {
        parse_args(args.iter().map(|a| a.to_string()), port.map(str::to_owned))
    }

    fn serve(addr: &str) -> Mode {
        Mode::Serve(addr.parse().expect("a valid address"))
    }

    #[test]
    fn serves_on_port_3000_then_port_then_addr() {
        assert_eq!(parse(&[], None).ok(), Some(serve("127.0.0.1:3000")));
        assert_eq!(parse(&[], Some("8080")).ok(), Some(serve("127.0.0.1:8080")));
        assert_eq!(
            parse(&["--addr", "0.0.0.0:9000"], Some("8080")).ok(),
            Some(serve("0.0.0.0:9000"))
        );
        assert_eq!(
            parse(&["--addr=[::1]:9000"], None).ok(),
            Some(serve("[::1]:9000"))
        );
        assert_eq!(parse(&["--demo"], None).ok(), Some(Mode::Demo));
        assert_eq!(parse(&["--help"], None).ok(), Some(Mode::Help));
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        assert!(matches!(
            parse(&["--port"], None),
            Err(ArgsError::Unknown(_))
        ));
        assert!(matches!(
            parse(&["--addr"], None),
            Err(ArgsError::MissingAddr)
        ));
        assert!(matches!(
            parse(&["--addr", "localhost"], None),
            Err(ArgsError::BadAddr { .. })
        ));
        assert!(matches!(
            parse(&[], Some("http")),
            Err(ArgsError::BadPort { .. })
        ));
    }
}
