//! `exchange-ews`: each colleague's day from on-premises Exchange through
//! Exchange Web Services (work in progress).
