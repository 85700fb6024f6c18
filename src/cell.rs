//! A cell: one billing partition in one region, the unit the controller moves.

/// One partition in one region.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub(crate) struct CellId {
    pub(crate) partition: String,
    pub(crate) region: String,
}

impl CellId {
    pub(crate) fn name(&self) -> String {
        format!("{}/{}", self.partition, self.region)
    }

    pub(crate) fn parse(name: &str) -> Option<CellId> {
        let (partition, region) = name.split_once('/')?;
        (!partition.is_empty() && !region.is_empty()).then(|| CellId {
            partition: partition.to_owned(),
            region: region.to_owned(),
        })
    }
}

impl std::str::FromStr for CellId {
    type Err = String;

    /// A cell as the command line takes it: `partition/region`.
    fn from_str(name: &str) -> Result<CellId, String> {
        CellId::parse(name).ok_or_else(|| {
            format!("`{name}` is not a cell; write it as partition/region, e.g. p1/eu-west-1")
        })
    }
}
