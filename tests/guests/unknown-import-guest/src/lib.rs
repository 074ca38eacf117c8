//! A test component that implements the `etl` world but also imports
//! `acme:geo/lookup@1.0.0`, which the broker does not provide: loading it must fail
//! with an error naming that import.

wit_bindgen::generate!({
    inline: r#"
        package acme:geo@1.0.0;

        interface lookup {
            country: func(ip: string) -> string;
        }

        world rogue {
            include rustmq:etl/etl@1.0.0;
            import lookup;
        }
    "#,
    path: "../../../wit",
    world: "acme:geo/rogue",
    generate_all,
});

struct Rogue;

impl Guest for Rogue {
    fn init(_params: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn process(mut msg: Message, _ctx: ProcessContext) -> ProcessResult {
        // Use the import so it is not optimised away.
        msg.headers
            .push(("country".into(), acme::geo::lookup::country("8.8.8.8")));
        ProcessResult {
            transformed_messages: vec![msg],
            should_continue: true,
            error: None,
        }
    }
}

export!(Rogue);
