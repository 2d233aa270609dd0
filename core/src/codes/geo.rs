//! A point on the earth, as phones and cameras report it.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A point on the earth (WGS-84), as the phone's GPS reports it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    /// Latitude in degrees, -90 to 90.
    pub latitude: f64,
    /// Longitude in degrees, -180 to 180.
    pub longitude: f64,
}

impl GeoPoint {
    /// A point, if both coordinates are finite and in range.
    pub fn new(latitude: f64, longitude: f64) -> Result<Self> {
        if !latitude.is_finite() || !(-90.0..=90.0).contains(&latitude) {
            return Err(Error::invalid(
                "location",
                format!("latitude {latitude} is outside -90 to 90"),
            ));
        }
        if !longitude.is_finite() || !(-180.0..=180.0).contains(&longitude) {
            return Err(Error::invalid(
                "location",
                format!("longitude {longitude} is outside -180 to 180"),
            ));
        }
        Ok(Self {
            latitude,
            longitude,
        })
    }
}
