//! Helpers more than one stage needs, each shared for a reason it states:
//! the error type every stage returns (`error`), image references as the
//! engine and the registry spell them (`reference`), URLs shown without
//! their credentials (`url`), the clock every record is stamped with
//! (`clock`), the git facts a tag or a label is made of (`git`), the YAML
//! reader every file of the tree goes through (`yaml`), and base64 for the
//! signing code and the registry client (`base64`).
//! Knows nothing of images, the graph or engines.

pub mod base64;
pub mod clock;
pub mod error;
pub mod git;
pub mod reference;
pub mod url;
pub mod yaml;
