//! The mutating admission webhook: `AdmissionReview` in, `AdmissionResponse`
//! out, around the pure engine in [`crate::inject`].
