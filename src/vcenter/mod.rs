//! Client of the vSphere REST and SOAP APIs of a site's vCenter.
