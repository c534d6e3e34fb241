struct Orders;

impl Orders {
    #[calista::test(MIGRATIONS)]
    async fn start_empty(self) {}
}

fn main() {}
