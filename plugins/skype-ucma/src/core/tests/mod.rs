mod harness;
mod reads;
mod session;
mod writes;
